"""Correction review from a document's variants: raw vs corrected per line, diffs, reference CER, confidence, decisions."""
from __future__ import annotations

import html
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Optional, Union

from ..correction import review as correction_review
from ..errors import InputError
from ..evaluation import normalize, score_pairs
from ..model import Document, Line, Page, Producer, TextVariant
from ..version import __version__
from .tables import char_ops

CORRECTION_ORIGINS = ("llm", "lexicon")
Decision = Literal["accept", "reject", "edit"]
FILTERS = ("all", "changed", "low_confidence", "least_confident", "undecided")
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
    char_confidences: Optional[list[float]] = None  # of the raw reading, when the engine gives them
    cer_raw: Optional[float] = None        # line CER of the raw reading against the reference
    cer_corrected: Optional[float] = None  # ... of the proposal (None without reference text)
    cer_standing: Optional[float] = None   # ... of what stands now (after a human decision)

    @property
    def changed(self) -> bool:
        return self.proposal is not None and self.corrected != self.raw

    @property
    def has_reference(self) -> bool:
        return bool(normalize(self.reference or ""))

    @property
    def status(self) -> str:
        """accepted / rejected / edited (a human decided), refused (by the guard), proposed, or unchanged."""
        return self.decision or ("refused" if self.guard else ("proposed" if self.changed else "unchanged"))

    @property
    def where(self) -> str:
        return f"{self.page}, line {self.index}"


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
    if human.status == "rejected":  # the reading itself was rejected (nothing better was proposed)
        return "rejected"
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
    corrected = proposal.text if proposal else raw_text
    item = ReviewItem(page=page.name, index=index, line_id=line.id, raw=raw_text, corrected=corrected,
                      confidence=raw.confidence if raw else None, proposal=proposal, guard=guard,
                      decision=_decision(line, raw, proposal), reference=line.reference, standing=line.text,
                      char_confidences=raw.char_confidences if raw else None)
    if item.has_reference:
        item.cer_raw, item.cer_corrected, item.cer_standing = (
            score_pairs([(line.reference or "", t)]).cer for t in (raw_text, corrected, line.text))
    return item


def _inspection(document: Document) -> dict[str, dict]:
    """Per line id, what the correction step recorded (status, guard reason), via ``biqe_lab.correction.review``."""
    return {row.line_id: row.as_dict() for row in correction_review(document)}


def review_items(document: Document, only: str = "all", threshold: float = 0.6, n: int = 20) -> list[ReviewItem]:
    """Every line of the document as a ReviewItem, filtered if asked.

    ``only``: all; changed (a proposal or a refusal); low_confidence (raw confidence below
    ``threshold``); least_confident (the ``n`` lines of lowest confidence, lowest first);
    undecided (no human decision yet).
    """
    if only not in FILTERS:
        raise InputError(f"unknown review filter {only!r}; use {', '.join(FILTERS)}")
    inspected = _inspection(document)
    items = [review_item(page, i, line, inspected.get(line.id))
             for page in document.pages for i, line in enumerate(page.lines, start=1)]
    if only == "changed":
        items = [it for it in items if it.changed or it.guard]
    elif only == "low_confidence":
        items = [it for it in items if it.confidence is not None and it.confidence < threshold]
    elif only == "least_confident":
        items = sorted((it for it in items if it.confidence is not None), key=lambda it: it.confidence)[:n]
    elif only == "undecided":
        items = [it for it in items if it.decision is None]
    return items


def find_line(document: Document, line_id: str) -> tuple[Page, Line]:
    for page in document.pages:
        for line in page.lines:
            if line.id == line_id:
                return page, line
    raise InputError(f"no line {line_id!r} in document {document.name}")


_LISTENERS: "weakref.WeakSet" = weakref.WeakSet()  # review panels shown: told of every decision


def decide(document: Document, line_id: str, decision: Decision, text: Optional[str] = None,
           save_to: Union[str, Path, None] = None) -> TextVariant:
    """Record a human decision on a line as an accepted ``human`` variant (appended; nothing is overwritten).

    ``accept`` keeps the correction proposal (or ``text``, an edit of it); ``edit`` keeps
    ``text``; ``reject`` goes back to the raw recognition (an accepted human copy of it) or,
    when nothing was proposed, records the reading as wrong (a ``rejected`` human variant: the
    raw text still stands, for want of better, and the line is marked for transcription). The
    new variant's parent is the variant it confirms or rejects. ``save_to`` writes the document (JSON) at once; review panels showing
    the document update their row (and save to their own file).
    """
    if decision not in ("accept", "reject", "edit"):
        raise InputError(f"unknown decision {decision!r}; use accept, edit or reject")
    if decision == "edit" and text is None:
        raise InputError("an edit needs the new text")
    _, line = find_line(document, line_id)
    raw = line.variant("htr")
    proposal = next((v for v in reversed(line.variants) if v.origin in CORRECTION_ORIGINS), None)
    status = "accepted"
    if decision in ("accept", "edit"):
        base = proposal or raw
        chosen = base.text if base and text is None else (text or "")
    else:
        base = raw
        chosen = raw.text if raw else ""
        if proposal is None:  # nothing to go back from: the reading is marked wrong (a rejection, as data)
            status = "rejected"
            line.variants = [v.model_copy(update={"status": "superseded"}) if v.status == "accepted" else v
                             for v in line.variants]
    variant = TextVariant(text=chosen, origin="human", producer=HUMAN, status=status,
                          parent=base.id if base else None)
    line.add_variant(variant)
    if save_to is not None:
        document.save(save_to)
    for panel in list(_LISTENERS):
        panel.decided(document, line_id)
    return variant


def line_cer(reference: Optional[str], text: str) -> Optional[float]:
    """The CER of one line against its reference, None when it has none."""
    return score_pairs([(reference or "", text)]).cer if normalize(reference or "") else None


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


def confidence_html(text: str, confidences: Optional[list[float]], threshold: float = 0.5) -> str:
    """``text`` with each character below ``threshold`` confidence shaded red (darker: less sure).

    The confidence shows as a tooltip; without per-character confidences the text is plain.
    """
    if not confidences or len(confidences) != len(text):
        return html.escape(text)
    out = []
    for ch, c in zip(text, confidences):
        if c >= threshold:
            out.append(html.escape(ch))
            continue
        strength = 0.25 + 0.6 * (1 - c / threshold if threshold else 1)
        out.append(f'<span class="lowconf" title="confidence {c:.2f}" style="background:rgba(230,40,40,'
                   f'{strength:.2f});border-radius:2px">{html.escape(ch) if ch != " " else "&nbsp;"}</span>')
    return "".join(out)


CONFIDENCE_KEY = ('<span style="font-size:12px">characters shaded <span style="background:rgba(230,40,40,.5)">red'
                  '</span> were read with a confidence below the threshold (darker: lower)</span>')


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.0%}"


def cer_html(item: ReviewItem) -> str:
    """"CER 40% → 20%" (raw → corrected, and what stands when a human changed it), or "no reference"."""
    if not item.has_reference:
        return "<span style='color:#888'>no reference</span>"
    text = f"CER {_pct(item.cer_raw)}"
    if item.changed:
        text += f" → {_pct(item.cer_corrected)}"
    if item.decision and item.cer_standing not in (item.cer_raw, item.cer_corrected):
        text += f" (now {_pct(item.cer_standing)})"
    return text


def review_table_html(items: Iterable[ReviewItem], limit: Optional[int] = 200, images: Optional[dict] = None,
                      threshold: float = 0.5, more_link: str = "") -> str:
    """A static HTML table of review items (what the review panel shows, for headless runs and reports).

    ``images``: line id -> an <img> tag of its crop. Past ``limit`` lines it says how many more
    there are (and links ``more_link``, e.g. the run's review.csv).
    """
    items = list(items)
    if not items:
        return "<p>No line matches this filter.</p>"
    shown = items if limit is None else items[:limit]
    images = images or {}
    rows = []
    for it in shown:
        conf = f"{it.confidence:.2f}" if it.confidence is not None else "–"
        ref = (f"<br><span style='color:#555'>ref:</span> {html.escape(it.reference or '')}"
               if it.has_reference else "")
        rows.append(f"<tr><td>{html.escape(it.page)}<br>line <b>{it.index}</b><br>conf. {conf}<br>{cer_html(it)}</td>"
                    f"<td>{images.get(it.line_id, '')}<div style='font-family:monospace'>"
                    f"<span style='color:#555'>raw:</span> {confidence_html(it.raw, it.char_confidences, threshold)}"
                    f"<br><span style='color:#555'>diff:</span> {diff_html(it.raw, it.corrected)}{ref}</div></td>"
                    f"<td>{html.escape(it.guard or '')}</td><td>{it.status}</td></tr>")
    more = ""
    if limit is not None and len(items) > limit:
        link = f" (all lines: <a href='{html.escape(more_link)}'>{html.escape(more_link)}</a>)" if more_link else ""
        more = f"<p>… and {len(items) - limit} more lines{link}</p>"
    return (DIFF_KEY + "<table class='review'><thead><tr><th>line</th><th>line image, raw reading "
            "(confidence shading), raw → corrected, reference</th><th>guard</th><th>status</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>" + more)


def review_frame(items: Iterable[ReviewItem]):
    """Review items as a table (the run's review.csv): every line, its texts, CERs and status."""
    import pandas as pd

    return pd.DataFrame([{"page": it.page, "line": it.index, "line_id": it.line_id, "confidence": it.confidence,
                          "raw": it.raw, "corrected": it.corrected, "standing": it.standing,
                          "reference": it.reference if it.has_reference else None, "CER raw": it.cer_raw,
                          "CER corrected": it.cer_corrected, "status": it.status, "guard": it.guard}
                         for it in items])
