"""Inspection of a correction: per line raw vs corrected text, a character-level diff and the guard's reason."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Union

from ..model import Document, Page
from .step import char_diff


RECORDED = ("status", "reason", "tier", "model", "prompt_version")  # what a review shows of the CorrectionRecord


@dataclass(frozen=True)
class LineReview:
    """One line as the notebook widgets show it."""

    page: str
    line_id: str
    raw: str
    corrected: str
    status: str  # changed | unchanged | rejected | uncorrected
    reason: str
    tier: str
    model: str
    prompt_version: str
    proposal: str  # what the back-end proposed (differs from ``corrected`` when rejected)
    diff: list[tuple[str, str, str]]  # (equal|insert|delete|replace, raw part, corrected part)

    def as_dict(self) -> dict:
        return asdict(self)


def review(source: Union[Document, Page]) -> list[LineReview]:
    """Per line of a document (or one page): raw HTR vs the text that stands after correction."""
    pages = source.pages if isinstance(source, Document) else [source]
    out = []
    for page in pages:
        for line in page.lines:
            raw_variant = line.variant("htr")
            raw = raw_variant.text if raw_variant else ""
            record = line.correction
            proposal = next((v.text for v in line.variants if record and v.id == record.variant), raw)
            corrected = line.text if raw_variant else raw
            facts = (record.model_dump(include=set(RECORDED)) if record
                     else {**dict.fromkeys(RECORDED, ""), "status": "uncorrected"})
            out.append(LineReview(page=page.name, line_id=line.id, raw=raw, corrected=corrected, proposal=proposal,
                                  diff=char_diff(raw, corrected), **facts))
    return out
