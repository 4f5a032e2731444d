"""A card for a PP-OCRv6 fine-tune (base, data with citations, steps, hours, held-out CER per set); optionally bundle it.

Evaluates the model with `biqe-lab evaluate --layout ground-truth` on every held-out set of the
run's split (the same split as today's default), then writes ``<model>.json`` beside the model.
With ``--bundle`` the model becomes the bundled ``biqe-htr-default`` (the previous bundled model
is kept as ``biqe-htr-default-v1`` so that `biqe-lab models list` still shows it) — only when it
beats the previous default on every held-out set, unless ``--force``.

    .venv/bin/python scripts/card_ppocrv6_finetune.py --work training/ppocrv6-finetune [--bundle]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

from biqe_lab import training  # noqa: E402
from biqe_lab.finetune import BEST, HISTORY  # noqa: E402
from biqe_lab.model_registry import DEFAULT_MODEL_NAME, bundled_dir, read_card, resolve_model  # noqa: E402

_spec = importlib.util.spec_from_file_location("build_default_model", ROOT / "scripts" / "build_default_model.py")
_builder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_builder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None, help="default: WORK/checkpoints/best.safetensors")
    ap.add_argument("--bundle", action="store_true")
    ap.add_argument("--force", action="store_true", help="bundle even where it does not beat the current default")
    args = ap.parse_args()
    run_dir = args.work / "checkpoints"
    model = args.model or run_dir / BEST
    plan = training.SplitPlan.from_json(json.loads((args.work / "split.json").read_text()))
    history = [json.loads(l) for l in (run_dir / HISTORY).read_text().splitlines() if l.strip()]
    run = json.loads((run_dir / "run.json").read_text())
    with tempfile.TemporaryDirectory(prefix="biqe_heldout_") as tmp:
        folders = training.copy_held_out(plan, Path(tmp) / "heldout")
        evaluation = _builder.evaluate_held_out(model, folders, Path(tmp))
    n_params, charset = _builder.model_facts(model)
    base_name = Path(run["base_model"]).stem  # the port the run started from (ppocrv6-small)
    base_card = read_card(Path(resolve_model(base_name)))
    manifest = yaml.safe_load((ROOT / "datasets" / "manifest.yaml").read_text())["datasets"]
    used = sorted(set(plan.dataset_of.values()))
    best = min(history, key=lambda h: h["val_cer"])
    # the epochs' wall-clock seconds as logged (end-of-epoch records; an epoch resumed in a later session counts
    # from the resume, so this is a lower bound)
    seconds = sum(h["seconds"] for h in history if h.get("end_of_epoch"))
    card = {
        "name": model.stem,
        "file": model.name,
        "engine": "kraken",
        "architecture": {"family": "PP-OCRv6 small (PPLCNetV4 + LightSVTR neck, CTC), kraken.lib.ppocr",
                         "line_height_px": 48, "parameters": n_params},
        "charset": charset,
        "base_model": base_card.get("base_model"),
        "training": {
            "data": [{k: d.get(k) for k in ("name", "content", "licence", "cite")} for d in manifest
                     if d["name"] in used],
            "split": "stable hash split: page sets 8/1/1 by page, line sets 8/1/1 by writer (train/validation/test)",
            "held_out": plan.held_out,
            # the run folder (its split.json marks every page train / validation / test: biqe_lab.evaluation)
            "phases": [{"work": str(args.work.resolve().relative_to(ROOT)), "base": base_name,
                        "steps": history[-1]["step"]}],
            "loop": "biqe_lab.finetune (plain CTC, AdamW, BatchNorm statistics frozen), kraken's `new` codec resize",
            "settings": {k: run[k] for k in ("epochs", "lrate", "warmup", "final_lrate", "batch_size", "augment",
                                              "max_width") if k in run},
            "best": {"step": best["step"], "lines_seen": best["step"] * run["batch_size"],
                     "validation_cer": round(best["val_cer"], 4)},
            "curve": [{"step": h["step"], "validation_cer": round(h["val_cer"], 4)} for h in history],
            "training_seconds": round(seconds),
            "hardware": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU, "
                        "shared with other jobs",
        },
        "evaluation": evaluation,
        "evaluation_note": "CER/WER as jiwer corpus totals after NFC, on held-out data never used for "
                           "training or early stopping; ground-truth line geometry.",
        "licence": "Apache-2.0 base (PaddleOCR) fine-tuned on CC BY 4.0 data: cite the data sets below",
    }
    model.with_suffix(".json").write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"card written: {model.with_suffix('.json')}")
    if not args.bundle:
        return
    current = bundled_dir() / f"{DEFAULT_MODEL_NAME}.safetensors"
    old = read_card(current).get("evaluation", {})
    worse = [k for k, v in evaluation.items() if k in old and v["cer"] >= old[k]["cer"]]
    if worse and not args.force:
        raise SystemExit(f"not bundled: no better than {DEFAULT_MODEL_NAME} on {', '.join(worse)}")
    keep = bundled_dir() / f"{DEFAULT_MODEL_NAME}-v1"
    for suffix in (".safetensors", ".json", ".md"):
        if current.with_suffix(suffix).is_file() and not keep.with_suffix(suffix).is_file():
            shutil.copyfile(current.with_suffix(suffix), keep.with_suffix(suffix))
    shutil.copyfile(model, current)
    current.with_suffix(".json").write_text(json.dumps({**card, "name": DEFAULT_MODEL_NAME, "file": current.name},
                                                       indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"bundled as {current} (previous default kept as {keep.name})")


if __name__ == "__main__":
    main()
