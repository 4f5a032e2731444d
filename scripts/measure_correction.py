"""Correction gains on real held-out output: each held-out set read once by a recognizer, then corrected by each tier.

For every page set of the default model's held-out split (``training/default-model/split.json``): the
pages' ground-truth lines read by the recognizer with its posteriors kept (as the pipeline keeps them
when it corrects), then corrected copies: cheap with ``preset=auto`` and with the set's hand-picked
preset, cheap with the confusion channel alone (posteriors dropped), and balanced where asked. Prints a
table of corpus CER (jiwer totals after NFC) and the worst per-page change; nothing is tuned here.

    .venv/bin/python scripts/measure_correction.py [--model biqe-htr-default] [--sets peraire,...] [--balanced peraire]
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ROOT / "training" / "default-model" / "split.json"
PRESETS = {"peraire": "french_20c_notes", "stanford_memorials": "english_19_20c_letters",
           "cremma_medieval_lat": "medieval_latin"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a model name or file (default: the bundled default)")
    ap.add_argument("--sets", default=",".join(PRESETS))
    ap.add_argument("--balanced", default="", help="sets to correct with the balanced tier too (slow)")
    args = ap.parse_args()
    from biqe_lab.correction import load_corrector
    from biqe_lab.correction.auto import AutoCorrector
    from biqe_lab.correction.step import correct_document
    from biqe_lab.evaluation import evaluate
    from biqe_lab.ingest import open_image, pages_from_images
    from biqe_lab.model import Document
    from biqe_lab.pipeline import load_corrector as cached, load_recognizer, resolve_engine
    from biqe_lab.training import SplitPlan, page_images

    plan = SplitPlan.from_json(json.loads(SPLIT.read_text()))
    engine, model = resolve_engine("kraken" if args.model else "auto", args.model)
    recognizer = load_recognizer(engine, model, ("fra",), "cpu", 8, keep_posteriors=True)
    print(f"recognizer: {Path(model).name}\n")
    print(f"{'set':22} {'lines':>5} {'raw':>7} {'tier / preset':34} {'CER':>7} {'change':>8} {'worst page':>11}")
    for name in args.sets.split(","):
        doc = Document(pages=pages_from_images(page_images(plan, "test", name, ROOT)))
        for page in doc.pages:
            recognizer.recognize(page, open_image(page.image))
        raw = evaluate(doc, "htr")
        runs = [("cheap", "auto", True), ("cheap", PRESETS[name], True), ("cheap", PRESETS[name], False)]
        runs += [("balanced", PRESETS[name], True)] if name in args.balanced.split(",") else []
        for tier, preset, posteriors in runs:
            fixed = copy.deepcopy(doc)
            if not posteriors:
                for page in fixed.pages:
                    for line in page.lines:
                        line.variant("htr").keep_posteriors(None)
            corrector = AutoCorrector(tier, cached) if preset == "auto" else load_corrector(tier, preset, settings={})
            correct_document(fixed, corrector)
            after = evaluate(fixed, "current")
            worst = max(a.rates.cer - b.rates.cer for a, b in zip(after.per_page, raw.per_page))
            choice = fixed.processing[-1].settings.get("preset_choice") or {}
            chosen = ",".join(choice.get("presets", []))
            label = f"{tier} / {preset}{' -> ' + chosen if chosen else ''}{'' if posteriors else ' (no posteriors)'}"
            print(f"{name:22} {raw.lines:>5} {raw.cer:>7.2%} {label:34} {after.cer:>7.2%} "
                  f"{(after.cer - raw.cer) / raw.cer:>+8.1%} {worst:>+11.2%}", flush=True)


if __name__ == "__main__":
    main()
