"""CER/WER against ground truth with jiwer: corpus totals after NFC, per page, with line matching by overlap."""
from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import jiwer

from .errors import InputError
from .geometry import overlap_ratio
from .ingest import read_ground_truth
from .model import Document, Line, Page

NORMALIZATION = "NFC"


def normalize(text: str) -> str:
    """NFC, and no leading/trailing whitespace (the only normalization evaluation applies)."""
    return unicodedata.normalize("NFC", text or "").strip()


@dataclass
class Rates:
    """Error counts and corpus rates: errors / reference length summed over all lines."""

    char_errors: int = 0
    ref_chars: int = 0
    word_errors: int = 0
    ref_words: int = 0

    @property
    def cer(self) -> float:
        return self.char_errors / self.ref_chars if self.ref_chars else float(self.char_errors > 0)

    @property
    def wer(self) -> float:
        return self.word_errors / self.ref_words if self.ref_words else float(self.word_errors > 0)

    def add(self, other: "Rates") -> None:
        self.char_errors += other.char_errors
        self.ref_chars += other.ref_chars
        self.word_errors += other.word_errors
        self.ref_words += other.ref_words


def score_pairs(pairs: list[tuple[str, str]]) -> Rates:
    """Corpus CER/WER of (reference, hypothesis) pairs, with jiwer's alignments."""
    pairs = [(normalize(r), normalize(h)) for r, h in pairs]
    pairs = [(r, h) for r, h in pairs if r or h]
    if not pairs:
        return Rates()
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    chars = jiwer.process_characters(refs, hyps)
    words = jiwer.process_words(refs, hyps)
    return Rates(
        char_errors=chars.substitutions + chars.deletions + chars.insertions,
        ref_chars=chars.substitutions + chars.deletions + chars.hits,
        word_errors=words.substitutions + words.deletions + words.insertions,
        ref_words=words.substitutions + words.deletions + words.hits,
    )


def hypothesis(line: Line, origin: str) -> str:
    """The text evaluated for a line: the latest ``htr`` reading, or the standing one (``current``)."""
    variant = line.current() if origin == "current" else line.variant(origin)
    return variant.text if variant else ""


def match_lines(predicted: list[Line], reference: list[Line], threshold: float = 0.1
                ) -> tuple[list[tuple[Line, Line]], list[Line], list[Line]]:
    """One-to-one matching by polygon IoU, greedily from the best overlap down.

    Returns (matched (reference, predicted) pairs, unmatched references, unmatched predictions).
    """
    candidates = []
    for i, ref in enumerate(reference):
        rx0, ry0, rx1, ry1 = ref.bbox
        for j, pred in enumerate(predicted):
            px0, py0, px1, py1 = pred.bbox
            if px0 > rx1 or rx0 > px1 or py0 > ry1 or ry0 > py1:
                continue
            iou = overlap_ratio(ref.polygon, pred.polygon)
            if iou >= threshold:
                candidates.append((iou, i, j))
    candidates.sort(reverse=True)
    used_r, used_p, pairs = set(), set(), []
    for _, i, j in candidates:
        if i in used_r or j in used_p:
            continue
        used_r.add(i)
        used_p.add(j)
        pairs.append((i, j))
    pairs.sort()
    return ([(reference[i], predicted[j]) for i, j in pairs],
            [r for i, r in enumerate(reference) if i not in used_r],
            [p for j, p in enumerate(predicted) if j not in used_p])


def page_pairs(page: Page, origin: str, threshold: float = 0.1) -> list[tuple[str, str]]:
    """(reference, hypothesis) pairs of a page.

    Lines that carry a reference (ground-truth layout) are compared directly; otherwise the
    page's predicted lines are matched to the lines of its ground-truth file by overlap,
    unmatched reference text counting as deleted and unmatched predicted text as inserted.
    """
    if any(line.reference is not None for line in page.lines):
        return [(line.reference or "", hypothesis(line, origin)) for line in page.lines]
    if page.ground_truth is None:
        raise InputError(f"page {page.name} has no ground truth to evaluate against", page=page.name)
    _, reference = read_ground_truth(Path(page.ground_truth), page.image)
    matched, missed, extra = match_lines(page.lines, reference, threshold)
    pairs = [(ref.reference or "", hypothesis(pred, origin)) for ref, pred in matched]
    pairs += [(ref.reference or "", "") for ref in missed]
    pairs += [("", hypothesis(pred, origin)) for pred in extra]
    return pairs


@dataclass
class PageScore:
    page: str
    lines: int
    rates: Rates


@dataclass
class Evaluation:
    """The result of one evaluation: corpus rates plus one score per page."""

    origin: str
    total: Rates = field(default_factory=Rates)
    per_page: list[PageScore] = field(default_factory=list)
    normalization: str = NORMALIZATION

    @property
    def cer(self) -> float:
        return self.total.cer

    @property
    def wer(self) -> float:
        return self.total.wer

    @property
    def lines(self) -> int:
        return sum(p.lines for p in self.per_page)

    def as_dict(self) -> dict:
        return {"origin": self.origin, "cer": self.cer, "wer": self.wer, "normalization": self.normalization,
                "totals": asdict(self.total),
                "per_page": [{"page": p.page, "lines": p.lines, "cer": p.rates.cer, "wer": p.rates.wer}
                             for p in self.per_page]}


def evaluate(document: Document, origin: str = "htr", match_threshold: float = 0.1) -> Evaluation:
    """CER/WER of ``document`` against its ground truth; ``origin`` is 'htr' or 'current'."""
    result = Evaluation(origin=origin)
    for page in document.pages:
        if page.error is not None:
            continue
        pairs = page_pairs(page, origin, match_threshold)
        rates = score_pairs(pairs)
        result.per_page.append(PageScore(page=page.name, lines=len(pairs), rates=rates))
        result.total.add(rates)
    if result.total.ref_chars == 0:
        raise InputError("the ground truth holds no reference text to evaluate against")
    return result


def report(htr: Evaluation, corrected: Optional[Evaluation] = None) -> dict:
    """The JSON written by ``biqe-lab evaluate`` (field names are a published contract)."""
    corrected_pages = {p.page: p.rates.cer for p in corrected.per_page} if corrected else {}
    out = {
        "pages": len(htr.per_page),
        "lines": htr.lines,
        "ref_chars": htr.total.ref_chars,
        "normalization": htr.normalization,
        "htr": {"cer": htr.cer, "wer": htr.wer},
    }
    if corrected is not None:
        out["corrected"] = {"cer": corrected.cer, "wer": corrected.wer}
    out["per_page"] = [{"page": p.page, "lines": p.lines, "htr_cer": p.rates.cer,
                        "corrected_cer": corrected_pages.get(p.page)} for p in htr.per_page]
    return out


def format_table(result: dict) -> str:
    """A readable table of an evaluation report."""
    has_corr = "corrected" in result
    head = f"{'page':<40} {'lines':>6} {'CER':>8}" + (f" {'CER corr.':>10}" if has_corr else "")
    rows = [head, "-" * len(head)]
    for p in result["per_page"]:
        row = f"{p['page'][:40]:<40} {p['lines']:>6} {p['htr_cer']:>8.2%}"
        if has_corr:
            row += f" {p['corrected_cer']:>10.2%}" if p["corrected_cer"] is not None else f" {'-':>10}"
        rows.append(row)
    rows.append("-" * len(head))
    total = f"{'all (' + str(result['pages']) + ' pages, ' + str(result['ref_chars']) + ' chars)':<40} " \
            f"{result['lines']:>6} {result['htr']['cer']:>8.2%}"
    if has_corr:
        total += f" {result['corrected']['cer']:>10.2%}"
    rows.append(total)
    rows.append(f"WER {result['htr']['wer']:.2%}" + (f" -> {result['corrected']['wer']:.2%}" if has_corr else "")
                + f"   (normalization: {result['normalization']}, corpus totals)")
    return "\n".join(rows)
