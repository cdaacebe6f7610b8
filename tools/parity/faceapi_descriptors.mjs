// Face descriptors from the original face-api (pure-JS tfjs CPU backend), for
// facelab's parity fixtures.  Called by make_other_fixtures.py:
//   node faceapi_descriptors.mjs <node_modules dir> <model dir> <in.u8> <n> <out.f32>
// in.u8: n RGB images 150x150, uint8 NHWC; out.f32: n x 128 float32 descriptors.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [pkgDir, modelDir, inPath, nStr, outPath] = process.argv.slice(2);
// face-api's node-wasm build takes the pure-JS @tensorflow/tfjs (CPU backend
// included) from node_modules; tfjs-node would need a native binary download.
const require = createRequire(path.join(pkgDir, 'noop.js'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();

const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json'), 'utf8'));
const weightMap = {};
for (const group of manifest) {
  const bytes = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(modelDir, p))));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  Object.assign(weightMap, tf.io.decodeWeights(buffer, group.weights));
}
const net = new faceapi.FaceRecognitionNet();
net.loadFromWeightMap(weightMap);

const n = Number(nStr);
const pixels = fs.readFileSync(inPath);
const size = 150 * 150 * 3;
const images = [];
for (let i = 0; i < n; i += 1) {
  images.push(tf.tensor3d(new Uint8Array(pixels.buffer, pixels.byteOffset + i * size, size), [150, 150, 3], 'int32'));
}
const descriptors = await net.computeFaceDescriptor(images);
const list = Array.isArray(descriptors) ? descriptors : [descriptors];
const out = new Float32Array(n * 128);
list.forEach((d, i) => out.set(d, i * 128));
fs.writeFileSync(outPath, Buffer.from(out.buffer));
console.log(`face-api ${faceapi.version} tfjs ${tf.version_core} backend ${tf.getBackend()}: ${n} descriptors`);
