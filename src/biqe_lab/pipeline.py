"""The one engine every front-end calls: run_pipeline(source, config, progress, cancel) over the steps."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Optional, Union

from PIL import Image

from . import defaults
from .defaults import (CORRECTION_TIERS, EXPORT_FORMATS, PDF_FORMATS, PIPELINE_STEPS,  # noqa: F401 - re-exported
                       STEP_NEEDS, parse_steps)
from .errors import BiqeError, CancelledError, InputError
from .ingest import Source, ingest, open_image
from .layout import LayoutStep, make_layout
from .model import Document, Page, PageError, ProcessingRecord, StepWarning, now_iso
from .model_registry import default_model, resolve_model
from .progress import CancelToken, NullProgress, Progress
from .recognition import Recognizer, make_recognizer
from .safezip import ZipLimits

if TYPE_CHECKING:
    from .correction import Corrector

DEFAULT_ENGINE = defaults.DEFAULT_ENGINE


def _choice(name: str, value: str, choices: tuple[str, ...], field: str) -> None:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}", field=field)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that chooses what the pipeline does, with the one set of defaults every front-end starts from.

    The defaults (see :mod:`biqe_lab.defaults`) are the whole product: kraken layout, the bundled
    handwriting model, cheap correction with the preset chosen from the text, PAGE + ALTO + PDF/A.
    Front-ends change only what their user asked for. Hashable so loaded models can be shared.
    """

    layout: str = defaults.DEFAULT_LAYOUT
    layout_model: Optional[str] = None
    engine: str = defaults.DEFAULT_ENGINE
    model: Optional[str] = None
    languages: tuple[str, ...] = defaults.DEFAULT_LANGUAGES
    device: str = defaults.DEFAULT_DEVICE
    batch_size: int = defaults.DEFAULT_BATCH_SIZE
    on_page_error: Literal["raise", "record"] = "raise"
    limits: ZipLimits = field(default_factory=ZipLimits)
    steps: tuple[str, ...] = PIPELINE_STEPS  # which of PIPELINE_STEPS run (export: when run_pipeline gets `out`)
    correction: str = defaults.DEFAULT_CORRECTION  # a tier of CORRECTION_TIERS; runs only when "correction" is in steps
    preset: str = defaults.DEFAULT_PRESET  # "auto", a preset name, or a preset .toml file
    formats: tuple[str, ...] = EXPORT_FORMATS  # XML exports
    pdf: str = defaults.DEFAULT_PDF_FORMAT  # the searchable PDF ("none": no PDF)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", parse_steps(self.steps))
        object.__setattr__(self, "languages", defaults.languages_of(self.languages))
        object.__setattr__(self, "formats", tuple(self.formats))
        _choice("correction tier", self.correction, CORRECTION_TIERS, "llm_tier")
        _choice("recognition engine", self.engine, defaults.ENGINES, "engine")
        _choice("PDF format", self.pdf, PDF_FORMATS, "pdf_format")
        for fmt in self.formats:
            _choice("export format", fmt, EXPORT_FORMATS, "formats")
        if self.on_page_error not in ("raise", "record"):
            raise InputError(f"on_page_error must be 'raise' or 'record', not {self.on_page_error!r}")

    @property
    def corrects(self) -> bool:
        return "correction" in self.steps and self.correction != "none"

    @property
    def exports(self) -> bool:
        return "export" in self.steps


def configure(base: Optional[PipelineConfig] = None, **changes) -> PipelineConfig:
    """The one place a front-end gets its PipelineConfig: the defaults (or ``base``) with what its user asked
    for; a change of ``None`` means "not asked" and keeps the default."""
    asked = {k: v for k, v in changes.items() if v is not None}
    try:
        return replace(base, **asked) if base is not None else PipelineConfig(**asked)
    except TypeError as exc:
        raise InputError(f"unknown pipeline setting: {exc}") from exc


@dataclass
class Steps:
    """The loaded back-ends of one configuration."""

    layout: LayoutStep
    recognizer: Optional[Recognizer] = None  # None when recognition is not among the steps
    corrector: Optional["Corrector"] = None  # None when correction does not run

    def running(self) -> list[tuple[str, object, Callable[[Page, Image.Image], Optional[list[StepWarning]]]]]:
        """(name, step, page method) of the page-level steps that run, in order; a method may return page warnings."""
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


@lru_cache(maxsize=8)
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
        if config.preset == defaults.AUTO_PRESET:  # chosen from the text: fresh per run (it holds the evidence)
            from .correction.auto import AutoCorrector, candidates

            for name in (*candidates(), defaults.FALLBACK_PRESET):  # a bad install fails before any input
                load_corrector(config.correction, name)
            steps.corrector = AutoCorrector(config.correction, load_corrector)
        else:
            steps.corrector = load_corrector(config.correction, config.preset)
    return steps


def run_pipeline(source: Union[Source, Document], config: Optional[PipelineConfig] = None,
                 progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None,
                 workdir: Optional[Union[str, Path]] = None, out: Optional[Union[str, Path]] = None) -> Document:
    """Ingest ``source`` (or take a Document), run the configured steps on every page, then export to ``out``.

    The page-level steps are layout, recognition and correction (those of ``config.steps``).
    Export is the last step, run when ``out`` is given: PAGE/ALTO (``config.formats``), the PDF
    (``config.pdf``) and ``out/document.json``; without "export" in the steps only
    ``document.json`` is written. Without ``out`` nothing is written (notebooks, evaluation).

    A page that fails raises (``on_page_error="raise"``) or is recorded on the page and in
    its warnings (``"record"``); it never silently disappears. Cancellation is checked
    between pages and steps.
    """
    config = config or configure()
    progress = progress or NullProgress()
    cancel = cancel or CancelToken()
    steps = steps_for(config)  # a bad configuration fails before any input is touched
    document = source if isinstance(source, Document) else ingest(
        source, workdir=workdir, limits=config.limits, with_ground_truth=True)
    running = steps.running()
    timings = {name: 0.0 for name, _, _ in running}
    warnings: dict[str, list[StepWarning]] = {name: [] for name, _, _ in running}
    started: dict[str, str] = {}
    progress.start(len(document.pages))
    try:
        for index, page in enumerate(document.pages):
            cancel.check(f"before page {page.name}")
            name = running[0][0]  # opening the image is part of the first step
            try:
                image = open_image(page.image)
                for name, _, run in running:
                    cancel.check(f"before {name} of page {page.name}")
                    progress.step(index, page.name, name)
                    t0 = time.perf_counter()
                    started.setdefault(name, now_iso())
                    warnings[name] += run(page, image) or []
                    timings[name] += time.perf_counter() - t0
            except CancelledError:
                raise
            except BiqeError as exc:
                if config.on_page_error == "raise":
                    raise
                page.error = PageError(code=exc.code, message=exc.message, step=name)
                warnings[name].append(StepWarning(message=f"page failed in {name}: {exc.message}", page=page.name))
            progress.page_done(index)
        for name, step, _ in running:
            _record(document, config, name, step, started.get(name, now_iso()), timings[name], warnings[name])
        if out is not None:
            cancel.check("before export")
            progress.step(max(len(document.pages) - 1, 0), document.name, "export")
            export(document, out, config)
    finally:
        progress.finish()
    return document


def _record(document: Document, config: PipelineConfig, name: str, step, started: str, seconds: float,
            warnings: list[StepWarning]) -> None:
    info = step.describe()
    if name == "recognition" and info["engine"] == "tesseract":
        info = {**info, "settings": {**info["settings"], "languages": list(config.languages)}}
    document.record(ProcessingRecord.of_step(name, info, started, seconds, warnings))


def export(document: Document, out: Union[str, Path], config: Optional[PipelineConfig] = None) -> dict[str, list[Path]]:
    """The export step: ``config``'s formats and PDF into ``out`` (only document.json without "export" in its steps)."""
    from .export import export_document

    config = config or configure()
    out = Path(out)
    if not config.exports:
        out.mkdir(parents=True, exist_ok=True)
        return {"document": [document.save(out / "document.json")]}
    return export_document(document, out, config.formats, pdf=config.pdf)


def written_files(document: Document, out: Union[str, Path]) -> dict[str, list[Path]]:
    """What the export step wrote into ``out`` (from its processing record), by format."""
    out = Path(out)
    found: dict[str, list[Path]] = {"document": [out / "document.json"]}
    record = next((r for r in reversed(document.processing) if r.step == "export"), None)
    if record is None:
        return found
    kept = [p for p in document.pages if p.error is None]
    for fmt in record.settings.get("formats", []):
        from .export import FORMATS

        found[fmt] = [out / FORMATS[fmt][2] / f"{p.name}.xml" for p in kept]
    if record.settings.get("pdf", "none") != "none":
        found["pdf"] = [out / f"{document.name}.pdf"]
    return found
