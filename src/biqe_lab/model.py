"""The data model that travels through every step: Document -> Page -> Region / Line -> TextVariant."""
from __future__ import annotations

import datetime as _dt
import json
import uuid
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .errors import InputError

SCHEMA_VERSION = 2  # version 1 files are upgraded on load (biqe_lab.model_v1)

Point = tuple[float, float]
Origin = Literal["htr", "llm", "lexicon", "human", "import"]
Status = Literal["proposed", "accepted", "rejected", "superseded"]
CorrectionStatus = Literal["changed", "unchanged", "rejected"]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_id(prefix: str) -> str:
    """A short unique id that is a valid XML ID (starts with a letter)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_points(points: list[Point], minimum: int, what: str) -> list[Point]:
    if len(points) < minimum:
        raise ValueError(f"a {what} needs at least {minimum} points, got {len(points)}")
    for x, y in points:
        if not (x == x and y == y):  # NaN
            raise ValueError(f"{what} has a NaN coordinate")
    return [(float(x), float(y)) for x, y in points]


class Producer(_Frozen):
    """Who made a text variant: engine, model and (for LLM steps) prompt version."""

    engine: str
    model: Optional[str] = None
    version: Optional[str] = None
    prompt_version: Optional[str] = None


class TextVariant(_Frozen):
    """One reading of a line. Variants are appended, never edited in place."""

    id: str = Field(default_factory=lambda: new_id("tv"))
    text: str
    origin: Origin
    producer: Producer
    confidence: Optional[float] = None
    char_confidences: Optional[list[float]] = None
    parent: Optional[str] = None
    status: Status = "proposed"
    created_at: str = Field(default_factory=now_iso)
    # the recognizer's per-frame evidence (biqe_lab.posteriors.LinePosteriors): in memory only, never
    # serialized; kept by the recognition step for the correction step of the same page, which drops it
    _posteriors: Any = PrivateAttr(default=None)

    @property
    def posteriors(self) -> Any:
        return self._posteriors

    def keep_posteriors(self, posteriors: Any) -> "TextVariant":
        self._posteriors = posteriors
        return self

    @model_validator(mode="after")
    def _confidences_fit(self) -> "TextVariant":
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} is outside [0, 1]")
        if self.char_confidences is not None and len(self.char_confidences) != len(self.text):
            raise ValueError("char_confidences must have one value per character of text")
        return self


class CorrectionRecord(_Frozen):
    """What the correction step did to one line: the variant it added, from which reading, and why."""

    tier: str  # the tier that ran (``balanced`` when ``best`` ran as it)
    preset: str
    variant: str  # id of the variant the step added
    parent: str  # id of the HTR variant it corrected
    status: CorrectionStatus
    reason: str = ""  # why the guard rejected the proposal ("" when accepted)
    diff: list[tuple[str, str, str]] = Field(default_factory=list)  # (op, raw part, corrected part), no "equal"
    model: str = ""
    prompt_version: str = ""


class Line(BaseModel):
    """A text line: geometry in source-image pixels (origin top-left) plus its text variants."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=lambda: new_id("line"))
    baseline: list[Point]
    polygon: list[Point]
    region_id: Optional[str] = None
    tags: dict[str, str] = Field(default_factory=dict)
    reference: Optional[str] = None
    variants: list[TextVariant] = Field(default_factory=list)
    correction: Optional[CorrectionRecord] = None  # set by the correction step

    @field_validator("baseline")
    @classmethod
    def _baseline_ok(cls, v: list[Point]) -> list[Point]:
        return _check_points(v, 2, "baseline")

    @field_validator("polygon")
    @classmethod
    def _polygon_ok(cls, v: list[Point]) -> list[Point]:
        return _check_points(v, 3, "polygon")

    def add_variant(self, variant: TextVariant) -> TextVariant:
        """Append a variant; an accepted one supersedes the previously accepted one."""
        if variant.status == "accepted":
            self.variants = [
                v.model_copy(update={"status": "superseded"}) if v.status == "accepted" else v
                for v in self.variants
            ]
        self.variants = [*self.variants, variant]
        return variant

    def current(self) -> Optional[TextVariant]:
        """The variant that stands: the latest accepted one, else the latest not rejected."""
        for wanted in ("accepted", "proposed"):
            for v in reversed(self.variants):
                if v.status == wanted:
                    return v
        return None

    def variant(self, origin: str) -> Optional[TextVariant]:
        """The latest variant of one origin (e.g. the raw ``htr`` reading), if any."""
        for v in reversed(self.variants):
            if v.origin == origin:
                return v
        return None

    @property
    def text(self) -> str:
        cur = self.current()
        return cur.text if cur else ""

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the polygon, as integers enclosing it."""
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys)))


class Region(BaseModel):
    """A text region (block); its lines point back to it by ``region_id``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=lambda: new_id("region"))
    type: str = "text"
    polygon: list[Point]

    @field_validator("polygon")
    @classmethod
    def _polygon_ok(cls, v: list[Point]) -> list[Point]:
        return _check_points(v, 3, "polygon")


class ImageRef(_Frozen):
    """The page image: where it is, its pixel size, resolution and content hash."""

    path: str
    width: int
    height: int
    sha256: str
    dpi: Optional[tuple[float, float]] = None
    frame: int = 0  # page index inside a multi-page TIFF


class GroundTruth(BaseModel):
    """A page's reference transcription, read once at ingest: its file and its regions and lines (``reference`` set)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    source: str  # the paired PAGE / ALTO file, or a line image's .gt.txt
    regions: list[Region] = Field(default_factory=list)
    lines: Optional[list[Line]] = None  # None: not read yet (a version-1 document); read from ``source`` on demand


class PageError(_Frozen):
    """Why a page failed: the error's code and message, and the step it failed in."""

    code: str
    message: str
    step: Optional[str] = None  # None: not known (a version-1 document)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Page(BaseModel):
    """One page: image, regions in reading order and ONE flat list of lines in reading order."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=lambda: new_id("page"))
    name: str
    image: ImageRef
    regions: list[Region] = Field(default_factory=list)
    lines: list[Line] = Field(default_factory=list)
    ground_truth: Optional[GroundTruth] = None
    error: Optional[PageError] = None  # set when a step failed on this page (the page is kept, not exported)

    @model_validator(mode="after")
    def _lines_inside_known_regions(self) -> "Page":
        known = {r.id for r in self.regions}
        for line in self.lines:
            if line.region_id is not None and line.region_id not in known:
                raise ValueError(f"line {line.id} points to unknown region {line.region_id}")
        return self

    def replace_layout(self, regions: list[Region], lines: list[Line]) -> None:
        """Swap in a new segmentation (regions and lines together, validated as a whole)."""
        self.lines = []
        self.regions = regions
        self.lines = lines


class StepWarning(_Frozen):
    """A warning of a step: about the whole run (``page`` None, e.g. the preset auto chose) or about one page."""

    message: str
    page: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.page}: {self.message}" if self.page else self.message


class ProcessingRecord(_Frozen):
    """Provenance of one step: what ran, with which settings, how long it took, and what it warned of."""

    step: str
    engine: str
    version: Optional[str] = None
    settings: dict[str, object] = Field(default_factory=dict)
    started_at: str = Field(default_factory=now_iso)
    seconds: float = 0.0
    warnings: list[StepWarning] = Field(default_factory=list)

    @classmethod
    def of_step(cls, step: str, info: dict, started_at: str, seconds: float,
                page_warnings: Iterable[StepWarning] = ()) -> "ProcessingRecord":
        """The record of a step from its ``describe()`` (engine, version, settings, run-wide warnings)."""
        warnings = [StepWarning(message=str(w)) for w in info.get("warnings", [])]
        return cls(step=step, engine=info["engine"], version=info.get("version"), settings=dict(info["settings"]),
                   started_at=started_at, seconds=round(seconds, 3), warnings=[*warnings, *page_warnings])


class Document(BaseModel):
    """A document: ordered pages plus the provenance of every step that touched them."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=lambda: new_id("doc"))
    name: str = "document"
    created_at: str = Field(default_factory=now_iso)
    pages: list[Page] = Field(default_factory=list)
    processing: list[ProcessingRecord] = Field(default_factory=list)

    def record(self, record: ProcessingRecord) -> None:
        self.processing = [*self.processing, record]

    def warnings(self) -> list[str]:
        """Every warning of the steps that ran, once, in their order (a page's as ``page: message``)."""
        return list(dict.fromkeys(str(w) for record in self.processing for w in record.warnings))

    def save(self, path: str | Path) -> Path:
        """Write the document as JSON (atomically: write then rename)."""
        from .atomic import write_atomically

        return write_atomically(path, self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Document":
        """Read a document.json (version 1 files are upgraded in memory; the file is left as it is)."""
        path = Path(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read document {path}: {exc}") from exc
        return cls.from_data(data, str(path))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Document":
        """A document from its JSON text (version 1 upgraded)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"not a biqe_lab document (invalid JSON): {exc}") from exc
        return cls.from_data(data, "the document")

    @classmethod
    def from_data(cls, data: Any, what: str = "the document") -> "Document":
        """A document from its parsed JSON, of this schema version or an older one this biqe_lab upgrades."""
        from .model_v1 import upgrade_v1

        version = data.get("schema_version") if isinstance(data, dict) else None
        if version == 1:
            data = upgrade_v1(data)
        elif version != SCHEMA_VERSION:
            raise InputError(
                f"{what} has schema_version {version!r}; this biqe_lab reads versions 1 and {SCHEMA_VERSION}"
            )
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            raise InputError(f"{what} is not a valid biqe_lab document: {exc}") from exc
