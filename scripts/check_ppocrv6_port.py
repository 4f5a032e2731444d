"""The port's proof on real line crops: the kraken model's greedy text against onnxruntime's on the same pixels.

Takes N line images spread over the shared line sets (a fixed shuffle), ports the variant, and
prints the share of lines read identically, the CER between the two readings, and each
reading's CER against the ground truth; then the lines that differ.

    .venv/bin/python scripts/check_ppocrv6_port.py [--variant small] [--lines 200] [--kraken-input]

``--kraken-input`` leaves out ``use_paddle_input`` (the first convolution's padding in kraken's
own input convention), which is what fine-tuned models run with.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import jiwer
from PIL import Image

from biqe_lab import ppocrv6

LINES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lines"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="small", choices=ppocrv6.VARIANTS)
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--kraken-input", action="store_true")
    args = ap.parse_args()
    sets = sorted(p for p in LINES.iterdir() if p.is_dir())
    files = []
    for folder in sets:
        found = sorted(folder.rglob("*.png"))
        random.Random(0).shuffle(found)
        files += found[: args.lines // len(sets)]
    model, facts = ppocrv6.port(args.variant)
    if not args.kraken_input:
        ppocrv6.use_paddle_input(model.nn)
    pairs = ppocrv6.compare_with_onnx(model, args.variant, [Image.open(f) for f in files])
    truth = [f.with_name(f.stem + ".gt.txt").read_text(encoding="utf-8").strip() for f in files]
    same = sum(a == b for a, b in pairs)
    onnx_text, port_text = [a for a, _ in pairs], [b for _, b in pairs]
    print(f"PP-OCRv6 {args.variant}: {facts['classes']} classes kept of {facts['head_rows']}; "
          f"{'kraken' if args.kraken_input else 'PaddleOCR'} input convention")
    print(f"lines {len(pairs)} from {', '.join(p.name for p in sets)}")
    print(f"identical text {same}/{len(pairs)} ({same / len(pairs):.1%})")
    print(f"CER port vs onnxruntime {jiwer.cer(onnx_text, port_text):.3%}")
    print(f"CER vs ground truth: onnxruntime {jiwer.cer(truth, onnx_text):.2%}, port {jiwer.cer(truth, port_text):.2%}")
    for (a, b), f in zip(pairs, files):
        if a != b:
            print(f"  {f.name}: onnx {a!r} | port {b!r}")


if __name__ == "__main__":
    main()
