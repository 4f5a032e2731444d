"""The one engine every front-end calls: run_pipeline(source, config, progress, cancel) over the steps."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Optional, Union

from PIL import Image

from .correction.presets import DEFAULT_PRESET
from .errors import BiqeError, CancelledError, InputError
from .ingest import Source, ingest, open_image
from .layout import LayoutStep, make_layout
from .model import Document, Page, ProcessingRecord, now_iso
from .model_registry import default_model, resolve_model
from .progress import CancelToken, NullProgress, Progress
from .recognition import Recognizer, make_recognizer
from .safezip import ZipLimits

if TYPE_CHECKING:
    from .correction import Corrector

DEFAULT_ENGINE = "auto"  # the bundled handwriting model when the build has one, else tesseract
PIPELINE_STEPS = ("layout", "recognition", "correction", "export")
STEP_NEEDS = {"recognition": "layout", "correction": "recognition", "export": "layout"}
CORRECTION_TIERS = ("none", "cheap", "balanced", "best")


def parse_steps(value: Union[str, tuple[str, ...], list[str], None]) -> tuple[str, ...]:
    """``layout,recognition,...``: a subset of PIPELINE_STEPS, in that order, each with what it needs."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return PIPELINE_STEPS
    steps = tuple(s.strip() for s in (value.split(",") if isinstance(value, str) else value))
    shown = ",".join(steps)
    unknown = [s for s in steps if s not in PIPELINE_STEPS]
    if unknown:
        raise InputError(f"unknown pipeline step(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {','.join(PIPELINE_STEPS)}", field="pipeline_steps")
    if len(set(steps)) != len(steps):
        raise InputError(f"pipeline_steps {shown!r} names a step twice", field="pipeline_steps")
    if list(steps) != sorted(steps, key=PIPELINE_STEPS.index):
        raise InputError(f"pipeline_steps must be in the order {','.join(PIPELINE_STEPS)}; got {shown!r}",
                         field="pipeline_steps")
    for step in steps:
        need = STEP_NEEDS.get(step)
        if need and need not in steps:
            raise InputError(f"pipeline step {step!r} needs {need!r}", field="pipeline_steps")
    return steps


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
    steps: tuple[str, ...] = PIPELINE_STEPS  # which of PIPELINE_STEPS run (export is the front-end's)
    correction: str = "none"  # a tier of CORRECTION_TIERS; runs only when "correction" is in steps
    preset: str = DEFAULT_PRESET  # the correction preset (document type)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", parse_steps(self.steps))
        if self.correction not in CORRECTION_TIERS:
            raise InputError(f"unknown correction tier {self.correction!r}; choose one of "
                             f"{', '.join(CORRECTION_TIERS)}", field="llm_tier")

    @property
    def corrects(self) -> bool:
        return "correction" in self.steps and self.correction != "none"


@dataclass
class Steps:
    """The loaded back-ends of one configuration."""

    layout: LayoutStep
    recognizer: Optional[Recognizer] = None  # None when recognition is not among the steps
    corrector: Optional["Corrector"] = None  # None when correction does not run

    def running(self) -> list[tuple[str, object, Callable[[Page, Image.Image], None]]]:
        """(name, step, page method) of the page-level steps that run, in order."""
        found = [("layout", self.layout, self.layout.segment)]
        if self.recognizer is not None:
            found.append(("recognition", self.recognizer, self.recognizer.recognize))
        if self.corrector is not None:
            corrector = self.corrector
            found.append(("correction", corrector, lambda page, _image: corrector.correct(page)))
        return found


@lru_cache(maxsize=4)
def load_layout(layout: str, layout_model: Optional[str], device: str) -> LayoutStep:
    """Load a layout back-end once per process and configuration (notebooks and the worker call this often)."""
    return make_layout(layout, layout_model, device=device)


@lru_cache(maxsize=4)
def load_recognizer(engine: str, model: Optional[str], languages: tuple[str, ...], device: str,
                    batch_size: int, keep_posteriors: bool = False) -> Recognizer:
    """Load a recognizer once per process and configuration."""
    return make_recognizer(engine, model, languages, device=device, batch_size=batch_size,
                           keep_posteriors=keep_posteriors)


@lru_cache(maxsize=4)
def load_corrector(tier: str, preset: str) -> "Corrector":
    """The correction step of a tier and preset, loaded once per process."""
    from .correction import load_corrector as load

    return load(tier, preset)


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
    """The loaded step objects of ``config`` (each model loaded once per process)."""
    steps = Steps(layout=load_layout(config.layout, _resolved(config.layout_model), config.device))
    if "recognition" in config.steps:
        engine, model = resolve_engine(config.engine, config.model)
        steps.recognizer = load_recognizer(engine, _resolved(model), config.languages, config.device,
                                           config.batch_size, keep_posteriors=config.corrects)
    if config.corrects:
        steps.corrector = load_corrector(config.correction, config.preset)
    return steps


def run_pipeline(source: Union[Source, Document], config: Optional[PipelineConfig] = None,
                 progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None,
                 workdir: Optional[Union[str, Path]] = None) -> Document:
    """Ingest ``source`` (or take a Document), then run the configured steps on every page.

    The page-level steps are layout, recognition and correction (those of ``config.steps``);
    export is left to the front-end (``export.export_document``).

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
    running = steps.running()
    timings = {name: 0.0 for name, _, _ in running}
    started: dict[str, str] = {}
    progress.start(len(document.pages))
    try:
        for index, page in enumerate(document.pages):
            cancel.check(f"before page {page.name}")
            try:
                image = open_image(page.image)
                for name, _, run in running:
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
    for name, step, _ in running:
        info = step.describe()
        settings = dict(info["settings"])
        if name == "recognition" and info["engine"] == "tesseract":
            settings["languages"] = list(config.languages)
        if info.get("warnings"):  # e.g. the `best` tier ran as `balanced`: front-ends show these
            settings["warnings"] = list(info["warnings"])
        document.record(ProcessingRecord(step=name, engine=info["engine"], version=info["version"],
                                         settings=settings, started_at=started.get(name, now_iso()),
                                         seconds=round(timings[name], 3)))
    return document
