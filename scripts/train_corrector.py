"""Build the cheap tier's data from TRAINING pages only: vocabularies, the confusion model and its keep bias.

Inputs: the held-out split (training/default-model/split.json; test and validation pages are
never read) and line pairs from scripts/collect_htr_pairs.py. Writes into
src/biqe_lab/correction/data/: vocab_<dataset>.tsv (word counts of the training
transcriptions) and confusions.json (character confusions of the recognizer, plus the keep
bias chosen by grid search on the training pairs). With --posterior-pairs (pairs collected with
--posteriors) it also chooses the weight of the recognizer's CTC posteriors and the keep bias
that goes with them (the channel used for kraken output).

    .venv/bin/python scripts/train_corrector.py --pairs /tmp/pairs.jsonl --posterior-pairs /tmp/post/pairs.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from biqe_lab.correction.guards import check, words  # noqa: E402
from biqe_lab.correction.channel import ConfusionModel, load_confusions  # noqa: E402
from biqe_lab.correction.cheap import LexiconBackend, apply_replacements  # noqa: E402
from biqe_lab.correction.lexicon import data_dir  # noqa: E402
from biqe_lab.correction.presets import load_preset  # noqa: E402
from biqe_lab.correction.tuning import guarded_choice, line_inputs, score_setting, training_rows  # noqa: E402
from biqe_lab.evaluation import score_pairs  # noqa: E402
from biqe_lab.ingest import pages_from_images  # noqa: E402
from biqe_lab.training import SplitPlan, page_images  # noqa: E402

DATASETS = ("peraire", "stanford_memorials", "cremma_medieval_lat")
PRESET_OF = {"peraire": "french_20c_notes", "stanford_memorials": "english_19_20c_letters",
             "cremma_medieval_lat": "medieval_latin"}


def build_vocabularies(split: dict, out: Path) -> None:
    for dataset in DATASETS:
        counts: Counter = Counter()
        for page in pages_from_images(page_images(SplitPlan.from_json(split), "train", dataset, ROOT)):
            for line in page.lines:
                counts.update(words(line.reference or ""))
        path = out / f"vocab_{dataset}.tsv"
        path.write_text("".join(f"{w}\t{c}\n" for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
                        encoding="utf-8")
        print(f"{path.name}: {len(counts)} words", flush=True)


_BACKENDS: dict[tuple[str, int], LexiconBackend] = {}


def backend_for(dataset: str, model: ConfusionModel) -> LexiconBackend:
    """One back-end per data set and model: its candidate cache serves every setting of a grid."""
    key = (dataset, id(model))
    if key not in _BACKENDS:
        _BACKENDS[key] = LexiconBackend(load_preset(PRESET_OF[dataset]), confusions=model)
    return _BACKENDS[key]


def score_margins(rows: list[dict], model: ConfusionModel) -> list:
    """(row, preset, margins of its uncertain words) per line, by each data set's preset."""
    decided = []
    inputs = line_inputs(rows)
    for dataset in DATASETS:
        backend = backend_for(dataset, model)
        preset = load_preset(PRESET_OF[dataset])
        chosen = [(r, line) for r, line in zip(rows, inputs) if r["dataset"] == dataset]
        decided += [(r, preset, backend.margins(line, preset)) for r, line in chosen]
        print(f"{dataset}: {len(chosen)} lines scored", flush=True)
    return decided


def bias_grid(decided: list, biases, label: str) -> dict:
    """bias -> (character errors, worst training page's CER change in points) when margins must beat it."""
    results = {}
    raw = score_pairs([(r["ref"], r["raw"]) for r, _, _ in decided])
    for bias in biases:
        lines = []
        for r, preset, margins in decided:
            text = apply_replacements(r["raw"], [(s, e, w) for s, e, w, m in margins if m > bias])
            lines.append((r["page"], r["ref"], r["raw"], text if check(r["raw"], text, preset) is None else r["raw"]))
        corr, worst = score_setting(lines)
        results[bias] = (corr.char_errors, worst)
        print(f"{label} keep_bias {bias:>7}: training CER raw {raw.cer:.4f} -> corrected {corr.cer:.4f} "
              f"({corr.char_errors - raw.char_errors:+d} errors; worst page {worst:+.2f} points)", flush=True)
    return results


def tune_posterior_channel(model: ConfusionModel, rows: list[dict]) -> None:
    """The posterior weight (one) and keep bias (per preset) with the fewest errors, each data set page-guarded.

    A data set's preset uses the posteriors only where they beat the confusion channel on its pages.
    """
    biases = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0, 30.0, 1000.0)
    plain = score_margins([{**r, "posteriors": None} for r in rows], model)
    confusion_errors = {dataset: bias_grid([d for d in plain if d[0]["dataset"] == dataset], (model.keep_bias,),
                                           f"{dataset} confusions")[model.keep_bias][0] for dataset in DATASETS}
    outcomes = {}  # weight -> (total errors, {preset: bias}, grids)
    model.posterior_keep_bias = {preset: 0.0 for preset in PRESET_OF.values()}  # margins: posteriors where given
    for weight in (1.0, 2.0, 3.0):
        model.posterior_weight = weight
        decided = score_margins(rows, model)
        chosen, total, grids = {}, 0, {}
        for dataset in DATASETS:
            part = [d for d in decided if d[0]["dataset"] == dataset]
            if not part:
                continue
            grid = bias_grid(part, biases, f"{dataset} posteriors x{weight}")
            bias = guarded_choice(grid, conservative=lambda b: b)
            if grid[bias][0] < confusion_errors[dataset]:
                chosen[PRESET_OF[dataset]] = bias
            total += min(grid[bias][0], confusion_errors[dataset])
            grids[dataset] = {str(b): {"errors": e, "worst_page_points": round(w, 3)} for b, (e, w) in grid.items()}
        outcomes[weight] = (total, chosen, grids)
    weight = min(outcomes, key=lambda w: (outcomes[w][0], w))
    total, chosen, grids = outcomes[weight]
    model.posterior_weight = weight
    model.posterior_keep_bias = chosen
    model.meta["posterior_grid"] = {str(w): {"errors": o[0], "keep_bias": o[1], "per_dataset": o[2]}
                                    for w, o in outcomes.items()}
    model.meta["posterior_pairs"] = len(rows)
    print(f"posterior weight {weight}, keep bias per preset {model.posterior_keep_bias} "
          f"(from {len(rows)} training lines)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", type=Path, default=ROOT / "training/default-model/split.json")
    ap.add_argument("--pairs", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--skip-vocab", action="store_true")
    ap.add_argument("--cache", type=Path, default=None, help="keep the scored candidates here (reruns are fast)")
    ap.add_argument("--posterior-pairs", type=Path, nargs="*", default=[],
                    help="pairs with the recognizer's posteriors: tune the posterior channel on them")
    args = ap.parse_args()
    out = args.out or data_dir()
    out.mkdir(parents=True, exist_ok=True)
    split = json.loads(args.split.read_text())
    if not args.skip_vocab:
        build_vocabularies(split, out)
    rows = training_rows(args.pairs, split, ROOT)
    print(f"{len(rows)} training line pairs from {len({r['page'] for r in rows})} pages", flush=True)
    model = ConfusionModel.learn((r["ref"], r["raw"]) for r in rows if r["ref"] and r["raw"])
    model.meta = {"source": "; ".join(sorted({f"{r['engine']} on {r['dataset']}" for r in rows})),
                  "pairs": len(rows), "built_by": "scripts/train_corrector.py"}
    load_confusions.cache_clear()
    text_rows = [{**r, "posteriors": None} for r in rows]  # this grid: the confusion channel alone
    if args.cache and args.cache.exists():
        decided = [(r, load_preset(PRESET_OF[r["dataset"]]), [tuple(m) for m in margins])
                   for r, margins in json.loads(args.cache.read_text())]
    else:
        decided = score_margins(text_rows, model)
        if args.cache:
            args.cache.write_text(json.dumps([(r, m) for r, _, m in decided], ensure_ascii=False))
    results = bias_grid(decided, (0.0, 5.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 30.0, 1000.0), "confusions")
    model.keep_bias = guarded_choice(results, conservative=lambda bias: bias)
    model.meta["keep_bias_grid"] = {str(k): {"errors": e, "worst_page_points": round(w, 3)}
                                    for k, (e, w) in results.items()}
    model.meta["training_cer_raw"] = round(score_pairs([(r["ref"], r["raw"]) for r in rows]).cer, 5)
    if args.posterior_pairs:
        tune_posterior_channel(model, [r for r in training_rows(args.posterior_pairs, split, ROOT) if r.get("posteriors")])
    (out / "confusions.json").write_text(json.dumps(model.to_json(), ensure_ascii=False), encoding="utf-8")
    print(f"keep_bias {model.keep_bias} written to {out / 'confusions.json'}")


if __name__ == "__main__":
    main()
