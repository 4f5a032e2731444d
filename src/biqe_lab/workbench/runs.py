"""Choosing sample pages and running the pipeline for notebooks: one `Run` per dataset and correction tier."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from ..demo import default_datasets
from ..errors import InputError, NoImagesError
from ..evaluation import Evaluation, evaluate, has_ground_truth, training_split
from ..ingest import find_images, ground_truth_for, ingest
from ..model import Document
from ..pipeline import PipelineConfig, configure, run_pipeline
from ..progress import Progress

SAMPLE_DATASET = "peraire/train"
NO_CORRECTION = "none"


def resolve_dataset(dataset: Union[str, Path, None]) -> Path:
    """A dataset folder: an existing path, else a name under the shared datasets (``peraire/train``).

    Empty or None gives the sample dataset (peraire). The shared folder is ``$BIQE_DATASETS``,
    else ``../shared/datasets`` beside the project.
    """
    text = str(dataset or "").strip() or SAMPLE_DATASET
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    shared = default_datasets() / text
    if shared.is_dir():
        return shared
    raise InputError(f"dataset {text!r} is neither a folder nor a data set under {default_datasets()}")


def dataset_name(folder: Union[str, Path]) -> str:
    """A short readable name: the path below ``datasets/`` (``peraire/train``), else the folder name."""
    parts = Path(folder).resolve().parts
    if "datasets" in parts:
        below = parts[len(parts) - parts[::-1].index("datasets"):]
        if below:
            return "/".join(below)
    return Path(folder).name


def sample_images(folder: Union[str, Path], pages: Optional[int] = None) -> list[Path]:
    """The first ``pages`` images of ``folder`` (natural order) that have ground truth (.xml or .gt.txt).

    The same pages ``biqe-lab evaluate FOLDER --limit N`` takes. A folder where no image has
    ground truth (new pages) gives its first images: they are read, shown and reviewed, not scored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"dataset folder {folder} does not exist")
    if pages is not None and pages < 1:
        raise InputError(f"the page limit must be at least 1, got {pages}")
    images = find_images(folder)
    found = [p for p in images if ground_truth_for(p) or p.with_name(p.stem + ".gt.txt").is_file()]
    found = (found or images)[: pages or None]
    if not found:
        raise NoImagesError(f"no page image in {folder}")
    return found


def make_config(layout: str = "ground-truth", engine: str = "auto", model: Optional[str] = None,
                languages: Union[str, Sequence[str]] = "fra+eng", tier: str = NO_CORRECTION,
                preset: Optional[str] = None, **extra) -> PipelineConfig:
    """The PipelineConfig of notebook parameters (empty ones keep the library's defaults); ``tier``
    "none" leaves the text as recognized."""
    return configure(layout=layout or None, engine=engine or None, model=model or None,
                     languages=languages or None, correction=tier or NO_CORRECTION, preset=preset or None,
                     **extra)


@dataclass
class Run:
    """One processed sample: which dataset, which tier, the document and its evaluations."""

    dataset: str
    tier: str
    document: Document
    config: PipelineConfig
    seconds: float = 0.0
    htr: Optional[Evaluation] = None
    corrected: Optional[Evaluation] = None
    settings: dict = field(default_factory=dict)
    keep_unreferenced: bool = False  # score lines whose reference is empty (as inserted text)
    training: dict = field(default_factory=dict)  # page name -> {"split": ..., "how": ...} (evaluation.training_split)

    @property
    def has_ground_truth(self) -> bool:
        return self.htr is not None

    def evaluate(self) -> "Run":
        """Score the raw recognition (``htr``) and, when a correction tier ran, the standing text.

        A document without ground truth (new pages) is not an error: ``htr`` and ``corrected``
        stay None and every table and plot says "no ground truth".
        """
        self.training = training_split(self.document)
        if not has_ground_truth(self.document):
            self.htr = self.corrected = None
            return self
        self.htr = evaluate(self.document, "htr", keep_unreferenced=self.keep_unreferenced)
        self.corrected = evaluate(self.document, "current", keep_unreferenced=self.keep_unreferenced) \
            if self.tier != NO_CORRECTION else None
        return self


def process_dataset(dataset: Union[str, Path, None] = None, pages: Optional[int] = 2, layout: str = "ground-truth",
                    engine: str = "auto", model: Optional[str] = None,
                    languages: Union[str, Sequence[str]] = "fra+eng", tier: str = NO_CORRECTION,
                    preset: Optional[str] = None, progress: Optional[Progress] = None,
                    keep_unreferenced: bool = False, images: Optional[Sequence[Union[str, Path]]] = None) -> Run:
    """Ingest the first ``pages`` ground-truth pages of ``dataset`` (or exactly ``images``), run the pipeline, evaluate."""
    folder = resolve_dataset(dataset)
    config = make_config(layout, engine, model, languages, tier, preset)
    chosen = [Path(i) for i in images] if images is not None else sample_images(folder, pages)
    document = ingest(chosen, name=dataset_name(folder).replace("/", "_"))
    t0 = time.perf_counter()
    run_pipeline(document, config, progress=progress)
    run = Run(dataset=dataset_name(folder), tier=tier or NO_CORRECTION, document=document, config=config,
              seconds=round(time.perf_counter() - t0, 2), keep_unreferenced=keep_unreferenced,
              settings={"dataset": str(folder), "pages": pages, "layout": layout, "engine": engine,
                        "model": model or None, "languages": "+".join(config.languages),
                        "tier": tier or NO_CORRECTION, "preset": preset or None,
                        "keep_unreferenced": keep_unreferenced})
    return run.evaluate()


def process_grid(datasets: Sequence[Union[str, Path]], tiers: Sequence[str] = (NO_CORRECTION,),
                 pages: Optional[int] = 2, **options) -> list[Run]:
    """``process_dataset`` for every dataset x tier (e.g. for the per-dataset and per-tier tables)."""
    return [process_dataset(d, pages=pages, tier=t, **options) for d in datasets for t in tiers]


def output_folder(value: Union[str, Path, None], notebook: str) -> Path:
    """Where a notebook writes: ``value``, else ``out/notebooks/<notebook>`` in the project (created)."""
    folder = Path(value) if value else Path(__file__).resolve().parents[3] / "out" / "notebooks" / notebook
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load_run(document_json: Union[str, Path], dataset: Optional[str] = None, tier: Optional[str] = None,
             keep_unreferenced: bool = False) -> Run:
    """A Run from a saved ``document.json`` (a job's result, ``biqe-lab evaluate --save-document``).

    Works without ground truth. ``tier`` defaults to the correction tier the document's own
    processing record names (none when it was not corrected).
    """
    document = Document.load(document_json)
    if tier is None:
        record = next((r for r in document.processing if r.step == "correction"), None)
        tier = str(record.settings.get("tier", NO_CORRECTION)) if record else NO_CORRECTION
    return Run(dataset=dataset or document.name, tier=tier, document=document, config=configure(),
               keep_unreferenced=keep_unreferenced, settings={"document": str(document_json)}).evaluate()
