"""`biqe-lab demo`: a few sample pages (peraire, else synthetic) through the whole chain, then scored."""
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
from .export import export_document
from .ingest import find_images, ground_truth_for, ingest
from .pipeline import PipelineConfig, run_pipeline
from .progress import ConsoleProgress
from .synthetic import write_synthetic_pages

DATASETS_ENV = "BIQE_DATASETS"
PERAIRE_SOURCE = "peraire (CC BY 4.0, Chagué & Pérez 2023, doi:10.5281/zenodo.7185907)"
SYNTHETIC_SOURCE = "synthetic"


@dataclass(frozen=True)
class DemoPages:
    """The sample pages copied or written for the demo, where they come from and their languages."""

    images: list[Path]
    source: str
    languages: tuple[str, ...]


def default_datasets() -> Path:
    """$BIQE_DATASETS, else ``../shared/datasets`` beside the project root."""
    configured = os.environ.get(DATASETS_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "datasets"


def prepare_pages(dest: Path, pages: int, datasets: Path) -> DemoPages:
    """The first ``pages`` peraire pages and their ground truth copied to ``dest`` (else synthetic pages)."""
    dest.mkdir(parents=True, exist_ok=True)
    train = datasets / "peraire" / "train"
    if not train.is_dir():
        return DemoPages(write_synthetic_pages(dest, pages), SYNTHETIC_SOURCE, ("eng", "fra"))
    pairs = [(image, xml) for image in find_images(train) if (xml := ground_truth_for(image))][:pages]
    images = []
    for image, xml in pairs:
        images.append(Path(shutil.copy2(image, dest / image.name)))
        shutil.copy2(xml, dest / xml.name)
    return DemoPages(images, PERAIRE_SOURCE, ("fra", "eng"))


def run_demo(out_dir: Path, pages: int = 3, datasets: Optional[Path] = None) -> None:
    """Run kraken layout + tesseract on ``pages`` sample pages, export them and score them."""
    if pages < 1:
        raise InputError(f"the demo needs at least one page, got {pages}")
    out_dir = Path(out_dir)
    demo = prepare_pages(out_dir / "input", pages, Path(datasets) if datasets else default_datasets())
    if not demo.images:
        raise InputError(f"no page with ground truth found for the demo ({demo.source})")
    # Only this run's pages: files left in input/ by an earlier demo are not processed again.
    document = ingest(demo.images, name="demo")
    config = PipelineConfig(layout="kraken", engine="tesseract", languages=demo.languages)
    run_pipeline(document, config, progress=ConsoleProgress("demo"))
    written = export_document(document, out_dir)
    scores = report(evaluate(document, "htr"))
    evaluation_json = out_dir / "evaluation.json"
    evaluation_json.write_text(json.dumps(scores, indent=2, ensure_ascii=False), encoding="utf-8")

    lines = sum(len(page.lines) for page in document.pages)
    click.echo(f"Pages: {demo.source}, in {out_dir / 'input'}")
    click.echo(f"Processed {len(document.pages)} pages, {lines} lines "
               f"(kraken layout, tesseract {'+'.join(demo.languages)})")
    click.echo(f"  PAGE XML:      {written['pagexml'][0].parent}")
    click.echo(f"  ALTO:          {written['alto'][0].parent}")
    click.echo(f"  document.json: {written['document'][0]}")
    click.echo(f"  evaluation:    {evaluation_json}")
    click.echo(format_table(scores))
    click.echo("tesseract is a model for printed text, so its CER on handwriting stays high "
               "until biqe_lab ships a trained handwriting model.")
