// Reference outputs of tfjs graph models from the original pure-JS runtime
// (@tensorflow/tfjs, CPU backend), for facelab's parity fixtures.
//
// Usage: node tfjs_reference.mjs JOB.json
//
// JOB.json (written by make_tfjs_fixtures.py):
//   { "tfjs_dir": folder whose node_modules holds @tensorflow/tfjs,
//     "jobs": [ { "name", "model": path of model.json, "weights_dir": folder of its .bin shards,
//                 "input": raw uint8 file (NHWC), "shape": [N,H,W,C],
//                 "sub": number | [per channel], "mul": number | [per channel],
//                 "outputs": [node names], "out_dir": folder for results } ] }
//
// The graph is fed (float32(input) - sub) * mul, computed with tfjs ops.  For
// every output node the raw float32 values go to OUT_DIR/<index>.f32, and a
// summary (names, shapes, files, tfjs version, backend) is printed as JSON.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(path.join(job.tfjs_dir, 'package.json'));
const tf = require('@tensorflow/tfjs');

function memoryHandler(modelPath, weightsDir) {
  const model = JSON.parse(readFileSync(modelPath, 'utf8'));
  const specs = [];
  const buffers = [];
  for (const group of model.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) buffers.push(readFileSync(path.join(weightsDir, p)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return {
    load: async () => ({
      modelTopology: model.modelTopology,
      format: model.format,
      generatedBy: model.generatedBy,
      convertedBy: model.convertedBy,
      signature: model.signature,
      userDefinedMetadata: model.userDefinedMetadata,
      weightSpecs: specs,
      weightData,
    }),
  };
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const summary = { tfjs: tf.version.tfjs, backend: tf.getBackend(), results: [] };
  for (const j of job.jobs) {
    const model = await tf.loadGraphModel(memoryHandler(j.model, j.weights_dir));
    const raw = readFileSync(j.input);
    const pixels = tf.tensor(Int32Array.from(raw), j.shape, 'int32').toFloat();
    const sub = Array.isArray(j.sub) ? tf.tensor1d(j.sub, 'float32') : tf.scalar(j.sub, 'float32');
    const mul = Array.isArray(j.mul) ? tf.tensor1d(j.mul, 'float32') : tf.scalar(j.mul, 'float32');
    const x = tf.mul(tf.sub(pixels, sub), mul);
    let outs = model.execute(x, j.outputs);
    if (!Array.isArray(outs)) outs = [outs];
    mkdirSync(j.out_dir, { recursive: true });
    const entry = { name: j.name, outputs: [] };
    for (let i = 0; i < outs.length; i++) {
      const data = await outs[i].data();
      const file = path.join(j.out_dir, `${i}.f32`);
      writeFileSync(file, Buffer.from(new Float32Array(data).buffer));
      entry.outputs.push({ node: j.outputs[i], shape: outs[i].shape, file });
    }
    summary.results.push(entry);
    tf.dispose([pixels, sub, mul, x, ...outs]);
    model.dispose();
  }
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main().catch((err) => { console.error(err); process.exit(1); });
