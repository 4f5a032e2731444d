"""Tune the balanced tier's weights on TRAINING pages: real recognizer output (scripts/collect_htr_pairs.py).

Every uncertain word's options (keep it, or a lexicon candidate) are scored once by the noisy
channel and by the LM in the line's context (other words as read), on whole training pages drawn
in a seeded order; then a grid over the keep bias and the LM weight picks the setting with the
fewest character errors among those that leave no training page worse than raw by more than
MAX_PAGE_LOSS points (biqe_lab.correction.tuning; ties: the most conservative). Writes
src/biqe_lab/correction/data/balanced.json, read by the balanced tier: the preset's weights for
lines with the recognizer's posteriors (key "with_posteriors") when the pairs carry them (collected
with --posteriors; run scripts/train_corrector.py first: its posterior weight shapes the options),
else the top-level weights (the confusion channel); the rest of the file is kept as it was.

    .venv/bin/python scripts/tune_balanced.py --pairs /tmp/post/pairs.jsonl --lines 400
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from biqe_lab.correction import load_preset  # noqa: E402
from biqe_lab.correction.guards import check  # noqa: E402
from biqe_lab.correction.cheap import apply_replacements, uncertain_words  # noqa: E402
from biqe_lab.correction.lexicon import data_dir  # noqa: E402
from biqe_lab.correction.local_lm import MAX_WORDS_PER_LINE, LocalLMBackend, Weights  # noqa: E402
from biqe_lab.correction.tuning import guarded_choice, line_inputs, score_setting, training_rows  # noqa: E402
from biqe_lab.evaluation import score_pairs  # noqa: E402

BIASES = (-2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 1000.0)
LM_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)


def score_options(rows: list[dict], preset, backend: LocalLMBackend) -> list:
    """Per line: [(start, end, [(option, channel score)], [LM score of the line with that option])]."""
    t0 = time.perf_counter()
    scored = []
    for i, (r, line) in enumerate(zip(rows, line_inputs(rows))):
        words = []
        for start, end, _word in uncertain_words(line, preset, backend.lexical.lexicon)[:MAX_WORDS_PER_LINE]:
            options = backend.options(line, start, end)
            if len(options) > 1:
                lm = backend.scorer.score([apply_replacements(r["raw"], [(start, end, w)]) for w, _ in options])
                words.append((start, end, options, lm))
        scored.append(words)
        if i % 50 == 49:
            print(f"{i + 1}/{len(rows)} lines scored ({time.perf_counter() - t0:.0f} s)", flush=True)
    return scored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--split", type=Path, default=ROOT / "training/default-model/split.json")
    ap.add_argument("--dataset", default="peraire")
    ap.add_argument("--preset", default="french_20c_notes")
    ap.add_argument("--lines", type=int, default=400, help="about this many training lines, whole pages (seeded)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="keep the scored options here (reruns are fast)")
    args = ap.parse_args()
    split = json.loads(args.split.read_text())
    rows = [r for r in training_rows([args.pairs], split, ROOT)
            if r["dataset"] == args.dataset and r["ref"] and r["raw"]]
    by_page: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_page[r["page"]].append(r)
    pages = sorted(by_page)
    random.Random(7).shuffle(pages)
    rows = []  # whole pages (seeded order) until --lines: the page-level guard needs every line of a page
    for page in pages:
        if len(rows) >= args.lines:
            break
        rows.extend(by_page[page])
    posteriors = all(r.get("posteriors") for r in rows)
    preset = load_preset(args.preset)
    backend = LocalLMBackend(preset, weights=Weights(keep_bias=0.0), posterior_weights=Weights(keep_bias=0.0))
    if args.cache and args.cache.exists():
        scored = json.loads(args.cache.read_text(encoding="utf-8"))
    else:
        scored = score_options(rows, preset, backend)
        if args.cache:
            args.cache.write_text(json.dumps(scored, ensure_ascii=False), encoding="utf-8")
    raw = score_pairs([(r["ref"], r["raw"]) for r in rows])
    print(f"{len(rows)} training lines of {args.dataset} from {len({r['page'] for r in rows})} pages, "
          f"raw CER {raw.cer:.4f} ({raw.char_errors} errors)")
    grid = {}
    for lm_weight in LM_WEIGHTS:
        for bias in BIASES:
            weights = Weights(bias, lm_weight)
            lines = []
            for r, words in zip(rows, scored):
                chosen = [(s, e, opts[b][0]) for s, e, opts, lm in words if (b := weights.choose(opts, lm))]
                text = apply_replacements(r["raw"], chosen)
                lines.append((r["page"], r["ref"], r["raw"], text if check(r["raw"], text, preset) is None else r["raw"]))
            fixed, worst = score_setting(lines)
            grid[(bias, lm_weight)] = (fixed.char_errors, worst)
            print(f"lm weight {lm_weight:>3} keep bias {bias:>6}: CER {fixed.cer:.4f} "
                  f"({fixed.char_errors - raw.char_errors:+d} errors; worst page {worst:+.2f} points)", flush=True)
    bias, lm_weight = guarded_choice(grid, conservative=lambda k: (k[0], -k[1]))
    fewest = grid[(bias, lm_weight)][0]
    out = (args.out or data_dir()) / "balanced.json"
    tuned = {"keep_bias": bias, "lm_weight": lm_weight,
             "meta": {"built_by": "scripts/tune_balanced.py", "pairs": args.pairs.name, "dataset": args.dataset,
                      "lines": len(rows), "training_cer_raw": round(raw.cer, 5),
                      "training_cer_balanced": round(fewest / max(raw.ref_chars, 1), 5),
                      "model": backend.scorer.name}}
    data = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    if posteriors:  # per preset
        data["with_posteriors"] = {**data.get("with_posteriors", {}), args.preset: tuned}
    else:
        data = {**tuned, **{k: v for k, v in data.items() if k == "with_posteriors"}}
    out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(f"keep bias {bias}, LM weight {lm_weight} written to {out}"
          f"{' (lines with posteriors)' if posteriors else ''}")


if __name__ == "__main__":
    main()
