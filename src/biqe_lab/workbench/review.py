"""Correction review from a document's variants: raw vs corrected per line, char diffs, filters, human decisions."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Iterable, Literal, Optional

from ..correction import review as correction_review
from ..errors import InputError
from ..model import Document, Line, Page, Producer, TextVariant
from ..version import __version__
from .tables import char_ops

CORRECTION_ORIGINS = ("llm", "lexicon")
Decision = Literal["accept", "reject"]
HUMAN = Producer(engine="human", model="biqe_lab review", version=__version__)


@dataclass
class ReviewItem:
    """One line under review: the raw reading, the correction proposal (if any) and what a human decided."""

    page: str
    index: int               # 1-based reading order on the page
    line_id: str
    raw: str                 # the latest htr reading
    corrected: str           # the proposal's text (the raw text when nothing was proposed)
    confidence: Optional[float]
    proposal: Optional[TextVariant]
    guard: Optional[str]     # why the proposal was refused, when it was
    decision: Optional[str]  # accepted / rejected / edited, from the latest human variant
    reference: Optional[str] = None
    standing: str = ""       # what the document holds for this line now (its current variant)

    @property
    def changed(self) -> bool:
        return self.proposal is not None and self.corrected != self.raw


def _guard_reason(line: Line, proposal: Optional[TextVariant], inspected: Optional[dict]) -> Optional[str]:
    """Why a proposal was refused: the correction module's reason, else a generic one for a rejected variant."""
    if inspected and inspected.get("status") == "rejected":
        return inspected.get("reason") or "refused by the correction guard"
    if proposal is not None and proposal.status == "rejected":
        return "refused by the correction guard (no reason recorded)"
    return None


def _decision(line: Line, raw: Optional[TextVariant], proposal: Optional[TextVariant]) -> Optional[str]:
    """accepted (the proposal, or the raw text when nothing was proposed), rejected (back to raw), or edited."""
    human = line.variant("human")
    if human is None:
        return None
    kept = proposal or raw
    if kept is not None and human.parent == kept.id and human.text == kept.text:
        return "accepted"
    if raw is not None and human.parent == raw.id and human.text == raw.text:
        return "rejected"
    return "edited"


def review_item(page: Page, index: int, line: Line, inspected: Optional[dict] = None) -> ReviewItem:
    """The review of one line from its variants (``inspected``: what the correction module reported, if any)."""
    raw = line.variant("htr")
    proposal = next((v for v in reversed(line.variants) if v.origin in CORRECTION_ORIGINS), None)
    raw_text = raw.text if raw else ""
    guard = _guard_reason(line, proposal, inspected)
    item = ReviewItem(page=page.name, index=index, line_id=line.id, raw=raw_text,
                      corrected=proposal.text if proposal else raw_text,
                      confidence=raw.confidence if raw else None, proposal=proposal, guard=guard,
                      decision=_decision(line, raw, proposal), reference=line.reference, standing=line.text)
    return item


def _inspection(document: Document) -> dict[str, dict]:
    """Per line id, what the correction step recorded (status, guard reason), via ``biqe_lab.correction.review``."""
    return {row.line_id: row.as_dict() for row in correction_review(document)}


def review_items(document: Document, only: Literal["all", "changed", "low_confidence"] = "all",
                 threshold: float = 0.6) -> list[ReviewItem]:
    """Every line of the document as a ReviewItem, filtered to changed or low-confidence lines if asked."""
    if only not in ("all", "changed", "low_confidence"):
        raise InputError(f"unknown review filter {only!r}; use all, changed or low_confidence")
    inspected = _inspection(document)
    items = [review_item(page, i, line, inspected.get(line.id))
             for page in document.pages for i, line in enumerate(page.lines, start=1)]
    if only == "changed":
        items = [it for it in items if it.changed or it.guard]
    elif only == "low_confidence":
        items = [it for it in items if it.confidence is not None and it.confidence < threshold]
    return items


def find_line(document: Document, line_id: str) -> tuple[Page, Line]:
    for page in document.pages:
        for line in page.lines:
            if line.id == line_id:
                return page, line
    raise InputError(f"no line {line_id!r} in document {document.name}")


def decide(document: Document, line_id: str, decision: Decision, text: Optional[str] = None) -> TextVariant:
    """Record a human decision on a line as an accepted ``human`` variant (appended; nothing is overwritten).

    ``accept`` keeps the correction proposal (or ``text``, an edit of it); ``reject`` goes back
    to the raw recognition. The new variant's parent is the variant it confirms.
    """
    if decision not in ("accept", "reject"):
        raise InputError(f"unknown decision {decision!r}; use accept or reject")
    _, line = find_line(document, line_id)
    raw = line.variant("htr")
    proposal = next((v for v in reversed(line.variants) if v.origin in CORRECTION_ORIGINS), None)
    if decision == "accept":
        base = proposal or raw
        chosen = base.text if base and text is None else (text or "")
    else:
        base = raw
        chosen = raw.text if raw else ""
    variant = TextVariant(text=chosen, origin="human", producer=HUMAN, status="accepted",
                          parent=base.id if base else None)
    return line.add_variant(variant)


def variant_table(document: Document, line_id: str):
    """The variants of one line, oldest first (origin, status, text, producer, parent): its provenance."""
    import pandas as pd

    _, line = find_line(document, line_id)
    return pd.DataFrame([{"id": v.id, "origin": v.origin, "status": v.status, "text": v.text,
                          "producer": " ".join(x for x in (v.producer.engine, v.producer.model) if x),
                          "confidence": v.confidence, "parent": v.parent} for v in line.variants])


def diff_html(a: str, b: str) -> str:
    """``a`` -> ``b`` as HTML: deleted characters red struck through, inserted green, substituted orange."""
    out = []
    for op, x, y in char_ops(a, b):
        x, y = html.escape(x), html.escape(y)
        if op == "equal":
            out.append(x)
        elif op == "delete":
            out.append(f'<del class="d" title="deleted" style="background:#fdd;color:#a00">{x}</del>')
        elif op == "insert":
            out.append(f'<ins class="i" title="inserted" style="background:#dfd;color:#060;text-decoration:none">'
                       f'{y}</ins>')
        else:
            out.append(f'<span class="s" title="substituted: {x} → {y}" style="background:#ffe0b3">'
                       f'<del style="color:#a00">{x}</del><b style="color:#a50">{y}</b></span>')
    return "".join(out)


DIFF_KEY = ('<div style="font-size:12px">character diff: <del style="background:#fdd;color:#a00">deleted</del> '
            '<ins style="background:#dfd;color:#060;text-decoration:none">inserted</ins> '
            '<span style="background:#ffe0b3"><del style="color:#a00">old</del><b style="color:#a50">new</b></span> '
            'substituted</div>')


def review_table_html(items: Iterable[ReviewItem], limit: int = 200) -> str:
    """A static HTML table of review items (what the review widget shows, for headless runs)."""
    items = list(items)
    rows = []
    for it in items[:limit]:
        conf = f"{it.confidence:.2f}" if it.confidence is not None else "–"
        status = it.decision or ("refused" if it.guard else ("proposed" if it.changed else "unchanged"))
        rows.append(f"<tr><td>{html.escape(it.page)}</td><td>{it.index}</td><td>{conf}</td>"
                    f"<td style='font-family:monospace'>{html.escape(it.raw)}</td>"
                    f"<td style='font-family:monospace'>{diff_html(it.raw, it.corrected)}</td>"
                    f"<td>{html.escape(it.guard or '')}</td><td>{status}</td></tr>")
    more = f"<p>… and {len(items) - limit} more lines</p>" if len(items) > limit else ""
    if not items:
        return "<p>No line matches this filter.</p>"
    return (DIFF_KEY + "<table class='review'><thead><tr><th>page</th><th>line</th><th>confidence</th><th>raw</th>"
            "<th>raw → corrected</th><th>guard</th><th>status</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>" + more)
