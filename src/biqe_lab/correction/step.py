"""The correction step: asks a tier's back-end for proposals, applies the guards, appends one variant per line."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from rapidfuzz.distance import Levenshtein

from ..errors import BiqeError, EngineError
from ..model import CorrectionRecord, Document, Line, Page, Producer, ProcessingRecord, StepWarning, TextVariant
from ..version import __version__
from . import guards
from .presets import Preset

@dataclass(frozen=True)
class LineInput:
    """What a back-end sees of a line: its id, raw HTR text, the recognizer's confidences and posteriors."""

    id: str
    text: str
    confidence: Optional[float] = None
    char_confidences: Optional[list[float]] = None
    posteriors: Any = field(default=None, repr=False, compare=False)  # biqe_lab.posteriors.LinePosteriors


@dataclass(frozen=True)
class Proposal:
    """A back-end's reading of one line (``text`` None: no usable answer; ``note`` says why)."""

    id: str
    text: Optional[str]
    note: str = ""


class Backend(Protocol):
    """A tier's engine: proposes corrected text for a batch of lines of one page."""

    origin: str  # TextVariant origin: "lexicon" or "llm"
    producer: Producer

    def settings(self) -> dict: ...

    def propose(self, lines: list[LineInput], preset: Preset) -> list[Proposal]: ...


def char_diff(raw: str, corrected: str) -> list[tuple[str, str, str]]:
    """Character-level diff as (op, raw part, corrected part), op in equal / insert / delete / replace."""
    return [(op.tag, raw[op.src_start:op.src_end], corrected[op.dest_start:op.dest_end])
            for op in Levenshtein.opcodes(raw, corrected)]


@dataclass
class Corrector:
    """One tier + preset, loaded once; ``correct(page)`` appends a correction variant to every line."""

    tier: str
    backend: Backend
    preset: Preset
    warnings: list[str] = field(default_factory=list)
    ran_as: Optional[str] = None  # e.g. "balanced" when `best` has no endpoint configured

    def describe(self) -> dict:
        settings = {"tier": self.tier, "preset": self.preset.name, "prompt_version": self.preset.prompt_version,
                    **self.backend.settings()}
        if self.ran_as:
            settings["ran_as"] = self.ran_as
        return {"engine": f"correction-{self.ran_as or self.tier}", "version": __version__,
                "settings": settings, "warnings": list(self.warnings)}

    def _inputs(self, page: Page) -> list[tuple[Line, TextVariant]]:
        return [(line, v) for line in page.lines if (v := line.variant("htr")) is not None]

    def correct(self, page: Page) -> list[StepWarning]:
        """Correct every recognized line of ``page`` in place (lines keep their ids, order and geometry).

        Returns the page's warnings (a back-end that failed); the run-wide ones are in ``describe()``.
        """
        todo = self._inputs(page)
        if not todo:
            return []
        inputs = [LineInput(line.id, v.text, v.confidence, v.char_confidences, v.posteriors) for line, v in todo]
        for _, v in todo:
            v.keep_posteriors(None)  # used once, here: a long document does not keep every page's posteriors
        try:
            answers = self.backend.propose(inputs, self.preset)
            failure = ""
        except Exception as exc:  # noqa: BLE001 - a failing back-end leaves the HTR text; lines and page say why
            error = exc if isinstance(exc, BiqeError) else EngineError(
                f"correction back-end {type(self.backend).__name__} failed: {type(exc).__name__}: {exc}")
            answers, failure = [], f"{error.code}: {error.message}"
            warnings = [StepWarning(message=f"correction ({self.tier}) failed, HTR text kept: {error.message}",
                                    page=page.name)]
        else:
            warnings = []
        by_id: dict[str, list[Proposal]] = {}
        for answer in answers:
            by_id.setdefault(answer.id, []).append(answer)
        for line, raw in todo:
            got = by_id.get(line.id, [])
            if len(got) > 1:
                proposal, note = None, f"{len(got)} answers for one line id"
            elif got:
                proposal, note = got[0].text, got[0].note
            else:
                proposal, note = None, failure or "no answer for this line id"
            if proposal is not None:
                proposal = guards.normalize_text(proposal, self.preset)
            reason = guards.check(raw.text, proposal, self.preset)
            if reason == "no proposal for this line" and note:
                reason = note
            self._record(line, raw, proposal, reason)
        return warnings

    def _record(self, line: Line, raw: TextVariant, proposal: Optional[str], reason: Optional[str]) -> None:
        text = proposal if proposal is not None else raw.text
        status = "rejected" if reason else "accepted"
        variant = line.add_variant(TextVariant(text=text, origin=self.backend.origin, producer=self.backend.producer,
                                               parent=raw.id, status=status))
        diff = [d for d in char_diff(raw.text, text) if d[0] != "equal"]
        line.correction = CorrectionRecord(
            tier=self.ran_as or self.tier, preset=self.preset.name, variant=variant.id, parent=raw.id,
            status="rejected" if reason else ("changed" if diff else "unchanged"), reason=reason or "", diff=diff,
            model=self.backend.producer.model or "", prompt_version=self.backend.producer.prompt_version or "")


def correct_document(document: Document, corrector: Corrector) -> Document:
    """Correct every page of a recognized document and append the step's processing record."""
    import time

    from ..model import now_iso

    started, t0 = now_iso(), time.perf_counter()
    warnings = [w for page in document.pages if page.error is None for w in corrector.correct(page)]
    document.record(ProcessingRecord.of_step("correction", corrector.describe(), started,
                                             time.perf_counter() - t0, warnings))
    return document
