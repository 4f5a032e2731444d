"""Every default and choice list a user meets, in one place.

The pipeline's config (:class:`biqe_lab.pipeline.PipelineConfig`), the CLI's ``click.Choice``
lists, the API's validation and OpenAPI text, the portal's form, the workbench and the
notebooks read them from here. Nothing heavy is imported (the API reads this at start-up).
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from .errors import InputError

# -- layout and recognition --------------------------------------------------------------------------
LAYOUTS = ("kraken", "ground-truth")  # detect regions and baselines, or keep the lines of the XML beside each image
DEFAULT_LAYOUT = "kraken"
GROUND_TRUTH_LAYOUT = "ground-truth"  # what `evaluate` reads by default: the reference lines
ENGINES = ("auto", "kraken", "tesseract", "trocr")
DEFAULT_ENGINE = "auto"  # the bundled handwriting model (biqe-htr-default) when the build has one, else tesseract
DEFAULT_LANGUAGES = ("fra", "lat", "eng")  # tesseract's languages: those of the shared collections
DEFAULT_DEVICE = "cpu"
DEFAULT_BATCH_SIZE = 8

# -- correction --------------------------------------------------------------------------------------
CORRECTION_TIERS = ("none", "cheap", "balanced", "best")
# cheap: as much gain as balanced on the held-out pages (17.51 % vs 17.54 % CER from 20.84 %) at 20x the speed
DEFAULT_CORRECTION = "cheap"
AUTO_PRESET = "auto"  # chosen per document from the recognized text (biqe_lab.correction.auto)
FALLBACK_PRESET = "generic_historical"  # what auto chooses when the text does not tell
DEFAULT_PRESET = AUTO_PRESET
PRESETS_DIR = Path(__file__).resolve().parent / "correction" / "presets"

# -- export ------------------------------------------------------------------------------------------
EXPORT_FORMATS = ("pagexml", "alto")
PDF_FORMATS = ("pdfa-2b", "pdfa-1b", "pdfa-3b", "pdf", "none")
DEFAULT_PDF_FORMAT = "pdfa-2b"

# -- steps -------------------------------------------------------------------------------------------
PIPELINE_STEPS = ("layout", "recognition", "correction", "export")
STEP_NEEDS = {"recognition": "layout", "correction": "recognition", "export": "layout"}


def preset_names() -> list[str]:
    """The correction presets shipped in the package (data files in correction/presets/)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def preset_choices() -> tuple[str, ...]:
    """What a user may name as a preset: ``auto`` and every shipped preset (a .toml path works too in Python)."""
    return (AUTO_PRESET, *preset_names())


def languages_of(value: "str | tuple[str, ...] | list[str] | None") -> tuple[str, ...]:
    """``"fra+eng"``, ``"fra,eng"`` or ``["fra", "eng"]`` -> ``("fra", "eng")``; empty gives the default."""
    if value is None:
        return DEFAULT_LANGUAGES
    if isinstance(value, str):
        value = value.replace(",", "+").split("+")
    found = tuple(v.strip() for v in value if v and v.strip())
    return found or DEFAULT_LANGUAGES


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
