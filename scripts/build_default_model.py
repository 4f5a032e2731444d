"""Bundle the best checkpoint of a training run as biqe_lab's default model, with its card.

Evaluates the model with `biqe-lab evaluate --layout ground-truth` on every held-out set of
the run's split (pages held out by page, line sets by writer), then writes
src/biqe_lab/bundled/biqe-htr-default.{safetensors,json,md}.

    .venv/bin/python scripts/build_default_model.py --work /work/train --run run1

A run that fine-tuned an earlier one (e.g. the same data at a lower learning rate) names the
earlier phases, so the card counts every epoch and every hour of training:

    .venv/bin/python scripts/build_default_model.py --work training/default-model-anneal --lrate 1e-4 \
        --phase training/default-model:11:1e-3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from biqe_lab import training  # noqa: E402
from biqe_lab.kraken_support import kraken_version  # noqa: E402
from biqe_lab.model_registry import DEFAULT_MODEL_NAME, bundled_dir  # noqa: E402

BIN = Path(sys.executable).parent
LINE_TYPE_FILTER = {"stanford_memorials": "Handwritten"}  # the goal counts handwritten lines only


def evaluate_held_out(model: Path, folders: dict[str, Path], out: Path) -> dict:
    results = {}
    for name, folder in sorted(folders.items()):
        scores = out / f"eval_{name}.json"
        cmd = [str(BIN / "biqe-lab"), "evaluate", str(folder), "--layout", "ground-truth", "--engine", "kraken",
               "--model", str(model), "--json", str(scores), "-q"]
        if name in LINE_TYPE_FILTER:
            cmd += ["--line-type", LINE_TYPE_FILTER[name]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"evaluation of {name} failed:\n{proc.stderr[-2000:]}")
        data = json.loads(scores.read_text())
        shown = f"biqe-lab evaluate heldout/{name} --layout ground-truth --model {model.stem}" + (
            f" --line-type {LINE_TYPE_FILTER[name]}" if name in LINE_TYPE_FILTER else "")
        results[name] = {"cer": round(data["htr"]["cer"], 4), "wer": round(data["htr"]["wer"], 4),
                         "pages": data["pages"], "lines": data["lines"], "ref_chars": data["ref_chars"],
                         "command": shown}
        print(f"{name}: CER {data['htr']['cer']:.2%} on {data['lines']} lines", flush=True)
    return results


def model_facts(model: Path) -> tuple[int, str]:
    """Parameter count and charset of a kraken recognition model."""
    from kraken.tasks import RecognitionTaskModel

    net = RecognitionTaskModel.load_model(model).net
    return sum(p.numel() for p in net.parameters()), "".join(sorted(net.codec.c2l))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="the training work folder (split.json, data/)")
    ap.add_argument("--run", default="checkpoints", help="checkpoint folder inside --work")
    ap.add_argument("--lrate", type=float, default=1e-3, help="this run's learning rate")
    ap.add_argument("--phase", action="append", default=[], metavar="WORK:EPOCHS:LRATE",
                    help="an earlier run this one continued from (its work folder, epochs kept, learning rate)")
    args = ap.parse_args()
    phases = []
    for spec in args.phase:
        work, epochs, lrate = spec.rsplit(":", 2)
        phases.append({"work": work, "epochs": int(epochs), "lrate": float(lrate),
                       "training_seconds": round(training.training_seconds(Path(work) / "checkpoints"))})

    plan = training.SplitPlan.from_json(json.loads((args.work / "split.json").read_text()))
    run_dir = args.work / args.run
    best = training.best_checkpoint(run_dir)
    if best is None:
        raise SystemExit(f"no epoch checkpoint in {run_dir}")
    target = bundled_dir() / f"{DEFAULT_MODEL_NAME}.safetensors"
    training.export_weights(best[0], target)
    print(f"exported {best[0].name} -> {target}", flush=True)

    with tempfile.TemporaryDirectory(prefix="biqe_heldout_") as tmp:
        folders = training.copy_held_out(plan, Path(tmp) / "heldout")
        evaluation = evaluate_held_out(target, folders, Path(tmp))

    n_params, charset = model_facts(target)
    manifest = yaml.safe_load((ROOT / "datasets" / "manifest.yaml").read_text())["datasets"]
    used = sorted(set(plan.dataset_of.values()))
    epoch = int(best[0].name.split("_")[1].split("-")[0]) + 1
    phases.append({"work": str(args.work), "epochs": epoch, "lrate": args.lrate,
                   "training_seconds": round(training.training_seconds(run_dir))})
    schedule = ", then ".join(f"{p['epochs']} epochs at {p['lrate']:g}" for p in phases)
    card = {
        "name": DEFAULT_MODEL_NAME,
        "file": target.name,
        "engine": "kraken",
        "architecture": {"family": "kraken VGSL (CNN + BiLSTM, CTC)", "spec": training.DEFAULT_SPEC,
                         "line_height_px": 48, "parameters": n_params},
        "charset": charset,
        "training": {
            "data": [{k: d.get(k) for k in ("name", "content", "licence", "cite")} for d in manifest
                     if d["name"] in used],
            "split": "stable hash split: page sets 8/1/1 by page, line sets 8/1/1 by writer (train/validation/test)",
            "lines": {s: {"page_files": len(plan.pages[s]), "line_images": len(plan.lines[s])} for s in training.SPLITS},
            "held_out": plan.held_out,
            "best_epoch": sum(p["epochs"] for p in phases),
            "phases": phases,
            "validation_accuracy": best[1],
            "training_seconds": sum(p["training_seconds"] for p in phases),
            "hardware": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU",
            "settings": {"batch_size": 8, "lrate": schedule, "optimizer": "AdamW", "augment": True,
                         "normalization": "NFC"},
            "kraken": kraken_version(),
        },
        "evaluation": evaluation,
        "evaluation_note": "CER/WER as jiwer corpus totals after NFC, on held-out data never used for "
                           "training or early stopping; ground-truth line geometry.",
        "licence": "CC BY 4.0 (derived from CC BY 4.0 training data; cite the data sets below)",
    }
    target.with_suffix(".json").write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    rows = "\n".join(f"| {k} | {v['lines']} | {v['cer']:.2%} | {v['wer']:.2%} |" for k, v in evaluation.items())
    cites = "\n".join(f"- **{d['name']}** ({d['licence']}): {d['cite']}" for d in card["training"]["data"])
    hours = card["training"]["training_seconds"] / 3600
    target.with_suffix(".md").write_text(f"""# {DEFAULT_MODEL_NAME}: biqe_lab's bundled handwriting recognizer

- Engine: kraken ({card['training']['kraken']}), {card['architecture']['family']}, {n_params:,} parameters,
  line height 48 px, spec `{training.DEFAULT_SPEC}`.
- Charset: {len(charset)} characters (see the JSON card).
- Trained by biqe_lab on {', '.join(used)}: {card['training']['best_epoch']} epochs ({schedule}; AdamW,
  batch 8, kraken's line augmentation), {hours:.1f} h of training on {card['training']['hardware']}.
- Held out (never trained on, not used for early stopping): 1 in 10 pages of each page set and
  1 in 10 writers of each line set (hash split; the list is in the JSON card).

## Held-out CER (`biqe-lab evaluate --layout ground-truth`, NFC, corpus totals)

| set | lines | CER | WER |
|---|---|---|---|
{rows}

stanford_memorials counts handwritten lines only (`--line-type Handwritten`).

## Training data and citations

{cites}

Licence of the model: {card['licence']}.
""", encoding="utf-8")
    print(f"card written: {target.with_suffix('.json')}")


if __name__ == "__main__":
    main()
