"""Before/after picture for the README: the face region of a photo and of its
`facelab protect` output side by side, with the difference amplified.

    python tools/before_after.py astronaut.png astronaut-protected.png -o docs/images/protect-astronaut.png
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image, ImageDraw


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--box", type=int, nargs=4, default=None, metavar=("X0", "Y0", "X1", "Y1"),
                   help="region to show (default: the changed pixels' bounding box plus a margin)")
    a = p.parse_args(argv)
    before = np.asarray(Image.open(a.before).convert("RGB")).astype(int)
    after = np.asarray(Image.open(a.after).convert("RGB")).astype(int)
    if before.shape != after.shape:
        print(f"before_after: {a.before} and {a.after} differ in size", file=sys.stderr)
        return 1
    diff = after - before
    if a.box:
        x0, y0, x1, y1 = a.box
    else:
        ys, xs = np.nonzero(np.abs(diff).max(2))
        m = 24
        x0, y0 = max(0, xs.min() - m), max(0, ys.min() - m)
        x1, y1 = min(before.shape[1], xs.max() + m), min(before.shape[0], ys.max() + m)
    k = max(1, int(np.abs(diff).max()))
    panels = [before[y0:y1, x0:x1], after[y0:y1, x0:x1], 128 + diff[y0:y1, x0:x1] * (127 // k)]
    titles = ["original", "protected", f"difference x{127 // k} (max {k}/255)"]
    h, w = y1 - y0, x1 - x0
    out = Image.new("RGB", (3 * w + 20, h + 22), "white")
    draw = ImageDraw.Draw(out)
    for j, (panel, title) in enumerate(zip(panels, titles)):
        out.paste(Image.fromarray(np.clip(panel, 0, 255).astype(np.uint8)), (j * (w + 10), 22))
        draw.text((j * (w + 10) + 4, 4), title, fill="black")
    out.save(a.output, optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
