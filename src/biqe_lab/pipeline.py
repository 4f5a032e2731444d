"""The one engine every front-end calls: run_pipeline(source, config, progress, cancel) over the steps."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional, Union

from .errors import BiqeError, CancelledError
from .ingest import Source, ingest, open_image
from .layout import LayoutStep, make_layout
from .model import Document, ProcessingRecord, now_iso
from .model_registry import default_model, resolve_model
from .progress import CancelToken, NullProgress, Progress
from .recognition import Recognizer, make_recognizer
from .safezip import ZipLimits

DEFAULT_ENGINE = "auto"  # the bundled handwriting model when the build has one, else tesseract


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that chooses what the pipeline does; hashable so loaded models can be shared."""

    layout: str = "kraken"
    layout_model: Optional[str] = None
    engine: str = DEFAULT_ENGINE
    model: Optional[str] = None
    languages: tuple[str, ...] = ("eng",)
    device: str = "cpu"
    batch_size: int = 8
    on_page_error: Literal["raise", "record"] = "raise"
    limits: ZipLimits = field(default_factory=ZipLimits)


@dataclass
class Steps:
    """The loaded back-ends of one configuration."""

    layout: LayoutStep
    recognizer: Recognizer


@lru_cache(maxsize=4)
def load_steps(layout: str, layout_model: Optional[str], engine: str, model: Optional[str],
               languages: tuple[str, ...], device: str, batch_size: int) -> Steps:
    """Load models once per process and configuration (notebooks and the worker call this often)."""
    return Steps(layout=make_layout(layout, layout_model, device=device),
                 recognizer=make_recognizer(engine, model, languages, device=device, batch_size=batch_size))


def _resolved(ref: Optional[str]) -> Optional[str]:
    """An existing path made absolute (one cache entry per file); anything else (a hub id) as given."""
    return str(Path(ref).resolve()) if ref and Path(ref).exists() else ref


def resolve_engine(engine: str, model: Optional[str]) -> tuple[str, Optional[str]]:
    """``auto`` -> kraken with the bundled model (tesseract when none ships); model names -> paths."""
    if model is not None:
        model = resolve_model(model)
    if engine in ("auto", "kraken") and model is None:
        bundled = default_model()
        if bundled is not None:
            return "kraken", str(bundled)
        if engine == "auto":
            return "tesseract", None
    return ("kraken" if engine == "auto" else engine), model


def steps_for(config: PipelineConfig) -> Steps:
    engine, model = resolve_engine(config.engine, config.model)
    return load_steps(config.layout, _resolved(config.layout_model), engine, _resolved(model), config.languages,
                      config.device, config.batch_size)


def run_pipeline(source: Union[Source, Document], config: Optional[PipelineConfig] = None,
                 progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None,
                 workdir: Optional[Union[str, Path]] = None) -> Document:
    """Ingest ``source`` (or take a Document), then run layout and recognition on every page.

    A page that fails raises (``on_page_error="raise"``) or is recorded on the page and in
    its warnings (``"record"``); it never silently disappears. Cancellation is checked
    between pages and steps.
    """
    config = config or PipelineConfig()
    progress = progress or NullProgress()
    cancel = cancel or CancelToken()
    steps = steps_for(config)  # a bad configuration fails before any input is touched
    document = source if isinstance(source, Document) else ingest(
        source, workdir=workdir, limits=config.limits, with_ground_truth=True)
    timings = {"layout": 0.0, "recognition": 0.0}
    started: dict[str, str] = {}
    progress.start(len(document.pages))
    try:
        for index, page in enumerate(document.pages):
            cancel.check(f"before page {page.name}")
            try:
                image = open_image(page.image)
                for name, run in (("layout", steps.layout.segment), ("recognition", steps.recognizer.recognize)):
                    cancel.check(f"before {name} of page {page.name}")
                    progress.step(index, page.name, name)
                    t0 = time.perf_counter()
                    started.setdefault(name, now_iso())
                    run(page, image)
                    timings[name] += time.perf_counter() - t0
            except CancelledError:
                raise
            except BiqeError as exc:
                if config.on_page_error == "raise":
                    raise
                page.error = f"{exc.code}: {exc.message}"
                page.warnings = [*page.warnings, f"page failed: {exc.message}"]
            progress.page_done(index)
    finally:
        progress.finish()
    for name, step in (("layout", steps.layout), ("recognition", steps.recognizer)):
        info = step.describe()
        settings = dict(info["settings"])
        if name == "recognition" and info["engine"] == "tesseract":
            settings["languages"] = list(config.languages)
        document.record(ProcessingRecord(step=name, engine=info["engine"], version=info["version"],
                                         settings=settings, started_at=started.get(name, now_iso()),
                                         seconds=round(timings[name], 3)))
    return document
