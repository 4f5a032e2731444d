"""Lines per second of each correction tier on the CPU (median of several runs), on held-out real lines.

The input (--input real, the default) is the held-out peraire pages (training/default-model/split.json,
ground-truth lines) read by the bundled recognizer with its posteriors kept, as the pipeline
corrects them (recognition is not timed); --input planted: their ground-truth text with
recognizer-like errors planted from the learned confusion model (seeded), every line at
confidence 0.5, no posteriors. Model loading is timed apart (once per process). `best` is timed
only when BIQE_LLM_BASE_URL / BIQE_LLM_MODEL are set.

    .venv/bin/python benchmarks/bench_correction.py [--repeats 3] [--lines 40] [--tiers cheap,balanced]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from biqe_lab.correction import load_corrector  # noqa: E402
from biqe_lab.correction.guards import WORD  # noqa: E402
from biqe_lab.correction.channel import load_confusions  # noqa: E402
from biqe_lab.ingest import open_image, pages_from_images  # noqa: E402
from biqe_lab.training import SplitPlan, page_images  # noqa: E402
from biqe_lab.model import ImageRef, Line, Page, Producer, TextVariant  # noqa: E402


def held_out_pages() -> list[Page]:
    split = SplitPlan.from_json(json.loads((ROOT / "training/default-model/split.json").read_text()))
    return pages_from_images(page_images(split, "test", "peraire", ROOT))


def read_by_default_model(limit: int) -> Page:
    """The held-out lines as the bundled recognizer reads them, posteriors kept (one page of ``limit`` lines)."""
    from biqe_lab.pipeline import load_recognizer, resolve_engine

    engine, model = resolve_engine("auto", None)
    recognizer = load_recognizer(engine, model, ("fra",), "cpu", 8, keep_posteriors=True)
    lines = []
    for page in held_out_pages():
        recognizer.recognize(page, open_image(page.image))
        lines += [line.model_copy(update={"region_id": None}) for line in page.lines]  # one page, no regions
    page = page_of([])
    page.lines = lines[:limit]
    return page


def held_out_lines(limit: int) -> list[str]:
    confusions, rng = load_confusions("confusions.json"), random.Random(4)
    out = []
    for page in held_out_pages():
        for line in page.lines:
            if len(line.reference or "") >= 20:
                out.append(WORD.sub(lambda m: confusions.corrupt(m.group(), rng)
                                    if len(m.group()) >= 4 and rng.random() < 0.33 else m.group(), line.reference))
    return out[:limit]


def page_of(texts: list[str]) -> Page:
    producer = Producer(engine="bench")
    lines = []
    for i, text in enumerate(texts):
        y = 50 * (i + 1)
        line = Line(baseline=[(0, y), (500, y)], polygon=[(0, y - 20), (500, y - 20), (500, y + 5), (0, y + 5)])
        line.add_variant(TextVariant(text=text, origin="htr", producer=producer, confidence=0.5))
        lines.append(line)
    return Page(name="bench", image=ImageRef(path="x", width=600, height=50 * (len(texts) + 2), sha256="0"),
                lines=lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lines", type=int, default=40)
    ap.add_argument("--tiers", default="cheap,balanced,best")
    ap.add_argument("--preset", default="french_20c_notes")
    ap.add_argument("--input", choices=("real", "planted"), default="real")
    args = ap.parse_args()
    source = read_by_default_model(args.lines) if args.input == "real" else page_of(held_out_lines(args.lines))
    n = len(source.lines)
    what = "read by the bundled recognizer (posteriors kept)" if args.input == "real" else "with planted errors"
    print(f"{n} held-out peraire lines {what}, {args.repeats} runs per tier, {os.cpu_count()} CPUs")
    print(f"{'tier':<10} {'load s':>8} {'lines/s (median)':>18} {'runs':>30}")
    for tier in args.tiers.split(","):
        if tier == "best" and not os.environ.get("BIQE_LLM_BASE_URL"):
            print(f"{tier:<10} {'-':>8} {'-':>18}   (no BIQE_LLM_BASE_URL: not timed)")
            continue
        t0 = time.perf_counter()
        corrector = load_corrector(tier, args.preset)
        load = time.perf_counter() - t0
        rates = []
        for _ in range(args.repeats):
            page = copy.deepcopy(source)
            backend = corrector.backend
            for channel in (getattr(backend, "channel", None), getattr(getattr(backend, "lexical", None), "channel", None)):
                if channel is not None:
                    channel.clear_cache()  # cold candidate search every run
            t0 = time.perf_counter()
            corrector.correct(page)
            rates.append(n / (time.perf_counter() - t0))
        print(f"{tier:<10} {load:>8.1f} {statistics.median(rates):>18.2f} "
              f"{' '.join(f'{r:.2f}' for r in rates):>30}")


if __name__ == "__main__":
    main()
