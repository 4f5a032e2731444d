"""Collect (recognizer output, ground truth) line pairs of one split's pages, for the correction models.

Reads the held-out split (training/default-model/split.json), recognizes the lines of the
training pages (ground-truth layout; `--part test` for the held-out pages, for analysis such as
scripts/correction_headroom.py, never for tuning) with one engine, and appends one JSON object
per line to OUT (jsonl): dataset, page, engine, raw text, line/char confidences, reference.
With --posteriors DIR (kraken engines) each page's CTC posteriors go to DIR/<page>.npz and each
line names its file and index ("posteriors": [file, index]), for the tuning scripts.

    .venv/bin/python scripts/collect_htr_pairs.py --engine kraken --out /tmp/pairs.jsonl \
        --posteriors /tmp/posteriors --max-pages 40
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import hashlib  # noqa: E402

from biqe_lab.ingest import open_image, pages_from_images  # noqa: E402
from biqe_lab.pipeline import load_recognizer, resolve_engine  # noqa: E402
from biqe_lab.posteriors import save_lines  # noqa: E402
from biqe_lab.training import SplitPlan, page_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", type=Path, default=ROOT / "training/default-model/split.json")
    ap.add_argument("--part", choices=("train", "test"), default="train", help="which pages of the split")
    ap.add_argument("--engine", default="kraken")
    ap.add_argument("--model", default=None)
    ap.add_argument("--lang", default="fra")
    ap.add_argument("--datasets", default="peraire,stanford_memorials,cremma_medieval_lat")
    ap.add_argument("--max-pages", type=int, default=1000, help="per dataset")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--posteriors", type=Path, default=None, help="also keep each page's CTC posteriors here")
    args = ap.parse_args()
    split = SplitPlan.from_json(json.loads(args.split.read_text()))
    wanted = args.datasets.split(",")
    done = set()
    if args.out.exists():
        done = {json.loads(l)["page"] for l in args.out.read_text().splitlines() if l.strip()}
    engine, model = resolve_engine(args.engine, args.model)
    recognizer = load_recognizer(engine, model, tuple(args.lang.split("+")), "cpu", 8,
                                 keep_posteriors=args.posteriors is not None)
    if args.posteriors:
        args.posteriors.mkdir(parents=True, exist_ok=True)
    for dataset in wanted:
        for image in page_images(split, args.part, dataset, ROOT)[: args.max_pages]:
            if str(image) in done:
                continue
            t0 = time.perf_counter()
            page = pages_from_images([image])[0]  # the ground-truth layout
            recognizer.recognize(page, open_image(page.image))
            variants = [line.variant("htr") for line in page.lines]
            stored = None
            if args.posteriors:
                stored = args.posteriors / (hashlib.sha1(str(image).encode()).hexdigest()[:16] + ".npz")
                save_lines(stored, [v.posteriors if v else None for v in variants])
            with args.out.open("a", encoding="utf-8") as fh:
                for i, (line, v) in enumerate(zip(page.lines, variants)):
                    fh.write(json.dumps({"dataset": dataset, "page": str(image), "engine": engine,
                                         "raw": v.text if v else "", "conf": v.confidence if v else None,
                                         "char_conf": v.char_confidences if v else None,
                                         "ref": line.reference or "",
                                         "posteriors": [str(stored), i] if stored else None},
                                        ensure_ascii=False) + "\n")
            print(f"{dataset} {image.name}: {len(page.lines)} lines {time.perf_counter() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
