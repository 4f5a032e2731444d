"""`biqe-lab demo`: held-out sample pages (peraire, else synthetic) through the whole chain, then scored."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import click

from .errors import InputError
from .evaluation import evaluate, format_table, report
from .ingest import find_images, ground_truth_for, ingest
from .model import Document
from .pipeline import configure, run_pipeline, written_files
from .progress import ConsoleProgress
from .synthetic import write_synthetic_pages

DATASETS_ENV = "BIQE_DATASETS"
DEMO_DATASET = "peraire"  # the held-out pages of this set, as the bundled model's card lists them
PERAIRE_SOURCE = "peraire (CC BY 4.0, Chagué & Pérez 2023, doi:10.5281/zenodo.7185907)"
SYNTHETIC_SOURCE = "synthetic"


@dataclass(frozen=True)
class DemoPages:
    """The sample pages copied or written for the demo, and what they are."""

    images: list[Path]
    source: str
    note: str


def default_datasets() -> Path:
    """$BIQE_DATASETS, else ``../shared/datasets`` beside the project root."""
    configured = os.environ.get(DATASETS_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "datasets"


def held_out_pages(dataset: str = DEMO_DATASET) -> list[str]:
    """The page images of ``dataset`` the bundled model never trained on (its card's ``training.held_out``)."""
    from .model_registry import default_model

    model = default_model()
    card = Path(model).with_suffix(".json") if model else None
    if card is None or not card.is_file():
        return []
    return list(json.loads(card.read_text(encoding="utf-8")).get("training", {}).get("held_out", {}).get(dataset, []))


def prepare_pages(dest: Path, pages: int, datasets: Path) -> DemoPages:
    """``pages`` held-out peraire pages and their ground truth copied to ``dest`` (else synthetic pages)."""
    dest.mkdir(parents=True, exist_ok=True)
    train = datasets / DEMO_DATASET / "train"
    if not train.is_dir():
        return DemoPages(write_synthetic_pages(dest, pages), SYNTHETIC_SOURCE,
                         f"no shared datasets at {datasets}: synthetic pages (rendered fonts, not real handwriting; "
                         f"set {DATASETS_ENV} or --datasets for real held-out pages)")
    held_out = held_out_pages()
    candidates = [train / name for name in held_out if (train / name).is_file()]
    note = "held out from the bundled model's training (its card lists them)"
    if not candidates:
        candidates, note = find_images(train), "the bundled model's card lists no held-out pages: the first pages"
    pairs = [(image, xml) for image in candidates if (xml := ground_truth_for(image))][:pages]
    images = []
    for image, xml in pairs:
        images.append(Path(shutil.copy2(image, dest / image.name)))
        shutil.copy2(xml, dest / xml.name)
    return DemoPages(images, PERAIRE_SOURCE, note)


def run_demo(out_dir: Path, pages: int = 3, datasets: Optional[Path] = None) -> Document:
    """The whole chain with the defaults (kraken layout, bundled model, cheap correction with the preset chosen
    from the text, PAGE + ALTO + PDF/A) on ``pages`` sample pages, scored raw and corrected; prints a summary."""
    if pages < 1:
        raise InputError(f"the demo needs at least one page, got {pages}")
    out_dir = Path(out_dir)
    demo = prepare_pages(out_dir / "input", pages, Path(datasets) if datasets else default_datasets())
    if not demo.images:
        raise InputError(f"no page with ground truth found for the demo ({demo.source})")
    click.echo(f"Pages: {len(demo.images)} from {demo.source}, {demo.note}; in {out_dir / 'input'}")
    # Only this run's pages: files left in input/ by an earlier demo are not processed again.
    document = ingest(demo.images, name="demo")
    config = configure()
    run_pipeline(document, config, progress=ConsoleProgress("demo"), out=out_dir)
    scores = report(evaluate(document, "htr"), evaluate(document, "current") if config.corrects else None)
    evaluation_json = out_dir / "evaluation.json"
    evaluation_json.write_text(json.dumps(scores, indent=2, ensure_ascii=False), encoding="utf-8")
    print_summary(document, scores, written_files(document, out_dir), evaluation_json)
    return document


def print_summary(document: Document, scores: dict, written: dict[str, list[Path]], evaluation_json: Path) -> None:
    lines = sum(len(page.lines) for page in document.pages)
    records = {r.step: r for r in document.processing}
    recognition = records.get("recognition")
    model = Path(str(recognition.settings.get("model", ""))).stem if recognition else ""
    correction = records.get("correction")
    click.echo(f"Processed {len(document.pages)} pages, {lines} lines: kraken layout, "
               f"{recognition.engine if recognition else 'no recognition'}{' ' + model if model else ''}, "
               f"correction {correction.settings.get('tier') if correction else 'none'}")
    raw, corrected = scores.get("htr", {}), scores.get("corrected")
    line = f"CER raw {raw.get('cer', float('nan')):.2%}"
    if corrected:
        line += f" -> corrected {corrected['cer']:.2%} (WER {raw.get('wer', 0):.2%} -> {corrected['wer']:.2%})"
    click.echo(line + " (kraken's lines matched to the reference lines by overlap)")
    for warning in document.warnings():
        click.echo(f"  note: {warning}")
    labels = {"pagexml": "PAGE XML", "alto": "ALTO", "pdf": "PDF/A", "document": "document.json"}
    for fmt, label in labels.items():
        paths = written.get(fmt) or []
        if paths:
            click.echo(f"  {label + ':':<15}{paths[0] if fmt in ('pdf', 'document') else paths[0].parent}")
    click.echo(f"  {'report:':<15}{evaluation_json}")
    click.echo("  time per step: " + ", ".join(f"{r.step} {r.seconds:.1f} s" for r in document.processing))
    click.echo(format_table(scores))
