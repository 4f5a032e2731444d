"""Recognition speed on the CPU: lines per second (median of REPEATS runs) per engine, on ground-truth lines.

Reads held-out pages of the default model's split (the peraire test pages by default), takes
their ground-truth line polygons (so only recognition is timed), and runs each engine REPEATS
times in this process after one warm-up page (models loaded once, as the worker does). The
seconds are those of the pipeline's own `recognition` processing record. Also prints the CER
of each engine on the same lines, so speed is never read without accuracy.

    .venv/bin/python benchmarks/bench_recognition.py [--repeats 3] [--threads 1] [--dataset peraire] [--engines kraken,v1,tesseract,ppocrv6-small]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ROOT / "training" / "default-model" / "split.json"
ENGINES = {"kraken": ("biqe-htr-default (PP-OCRv6 fine-tune, kraken)", None),
           "v1": ("biqe-htr-default-v1 (the previous default, kraken)", "biqe-htr-default-v1"),
           "tesseract": ("tesseract fra", None),
           "ppocrv6-small": ("ppocrv6-small zero-shot (kraken)", "ppocrv6-small"),
           "ppocrv6-tiny": ("ppocrv6-tiny zero-shot (kraken)", "ppocrv6-tiny")}


def held_out_images(dataset: str) -> list[Path]:
    from biqe_lab.training import SplitPlan, page_images

    return page_images(SplitPlan.from_json(json.loads(SPLIT.read_text())), "test", dataset, ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads (the worker's default is 1)")
    ap.add_argument("--dataset", default="peraire")
    ap.add_argument("--engines", default="kraken,v1,tesseract")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from biqe_lab.evaluation import evaluate
    from biqe_lab.ingest import pages_from_images
    from biqe_lab.model import Document
    from biqe_lab.pipeline import PipelineConfig, run_pipeline

    images = held_out_images(args.dataset)
    if not images:
        sys.exit(f"no held-out {args.dataset} page in {SPLIT}")
    print(f"{len(images)} held-out {args.dataset} pages, ground-truth lines, {args.threads} thread(s), "
          f"{args.repeats} runs per engine\n")
    print(f"{'engine':50} {'lines':>6} {'lines/s (median)':>17} {'min':>7} {'max':>7} {'CER':>7}")
    for engine in args.engines.split(","):
        label, model = ENGINES[engine]
        config = PipelineConfig(layout="ground-truth", engine="kraken" if model else engine, model=model,
                                languages=("fra",),
                                steps=("layout", "recognition"))
        run_pipeline(Document(pages=pages_from_images(images[:1])), config)  # warm-up: load the model once
        rates, lines, cer = [], 0, 0.0
        for _ in range(args.repeats):
            doc = run_pipeline(Document(pages=pages_from_images(images)), config)
            seconds = next(r.seconds for r in doc.processing if r.step == "recognition")
            lines = sum(len(p.lines) for p in doc.pages)
            rates.append(lines / seconds)
            cer = evaluate(doc, "htr").cer
        print(f"{label:50} {lines:>6} {statistics.median(rates):>17.1f} {min(rates):>7.1f} {max(rates):>7.1f} "
              f"{cer:>7.2%}", flush=True)


if __name__ == "__main__":
    main()
