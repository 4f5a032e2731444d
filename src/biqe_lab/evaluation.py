"""CER/WER against ground truth with jiwer: corpus totals after NFC, per page, partial references counted apart, training-split marks."""
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


def reference_lines(page: Page) -> list[Line]:
    """The lines of a page's ground truth, with their reference text (read from its file for a version-1 document)."""
    truth = page.ground_truth
    if truth is None:
        raise InputError(f"page {page.name} has no ground truth to evaluate against", page=page.name)
    if truth.lines is None:
        return read_ground_truth(Path(truth.source), page.image)[1]
    return truth.lines


def paired_lines(page: Page, threshold: float = 0.1) -> list[tuple[Optional[str], Optional[Line]]]:
    """(reference text or None, recognized line or None) per line of a page, in order.

    Lines that carry a reference (ground-truth layout) pair with themselves; otherwise the
    page's predicted lines are matched to its ground truth's lines by overlap: an unmatched
    reference pairs with None (its text counts as deleted), an unmatched predicted line with ""
    (a line where the ground truth has none is a layout error, not a missing reference).
    Reference None: the line has no reference text (partial ground truth).
    """
    if any(line.reference is not None for line in page.lines):
        return [(_ref_or_none(line.reference), line) for line in page.lines]
    matched, missed, extra = match_lines(page.lines, reference_lines(page), threshold)
    return ([(_ref_or_none(ref.reference), pred) for ref, pred in matched]
            + [(_ref_or_none(ref.reference), None) for ref in missed] + [("", pred) for pred in extra])


def page_line_pairs(page: Page, origin: str, threshold: float = 0.1) -> list[tuple[Optional[str], str]]:
    """(reference or None, hypothesis) per line of a page (:func:`paired_lines` with each line's text of ``origin``)."""
    return [(ref, hypothesis(line, origin) if line is not None else "") for ref, line in paired_lines(page, threshold)]


def _ref_or_none(reference: Optional[str]) -> Optional[str]:
    return reference if reference is not None and normalize(reference) else None


def page_pairs(page: Page, origin: str, threshold: float = 0.1,
               keep_unreferenced: bool = False) -> list[tuple[str, str]]:
    """(reference, hypothesis) pairs of a page that are scored.

    A line whose reference is empty (partial ground truth: the transcriber skipped it) is left
    out unless ``keep_unreferenced``, which scores its text as inserted (the old behaviour).
    """
    return [(ref or "", hyp) for ref, hyp in page_line_pairs(page, origin, threshold)
            if ref is not None or keep_unreferenced]


def page_has_ground_truth(page: Page) -> bool:
    """Whether a page has reference text (lines with a reference, or a ground truth read at ingest)."""
    return page.ground_truth is not None or any(line.reference is not None for line in page.lines)


def has_ground_truth(document: Document) -> bool:
    """Whether any page that did not fail has reference text."""
    return any(page_has_ground_truth(page) for page in document.pages if page.error is None)


@dataclass
class PageScore:
    page: str
    lines: int            # lines scored
    rates: Rates
    unreferenced: int = 0  # lines left out: their reference is empty (0 with keep_unreferenced)

    @property
    def total_lines(self) -> int:
        return self.lines + self.unreferenced


@dataclass
class Evaluation:
    """The result of one evaluation: corpus rates plus one score per page."""

    origin: str
    total: Rates = field(default_factory=Rates)
    per_page: list[PageScore] = field(default_factory=list)
    normalization: str = NORMALIZATION
    keep_unreferenced: bool = False

    @property
    def cer(self) -> float:
        return self.total.cer

    @property
    def wer(self) -> float:
        return self.total.wer

    @property
    def lines(self) -> int:
        return sum(p.lines for p in self.per_page)

    @property
    def unreferenced(self) -> int:
        return sum(p.unreferenced for p in self.per_page)

    def coverage_note(self) -> str:
        """"21 of 48 lines have no reference (left out of CER/WER)", or "" when every line has one."""
        total = self.lines + self.unreferenced
        if self.keep_unreferenced:
            return "lines without reference are kept (their text counts as inserted)"
        if not self.unreferenced:
            return ""
        return f"{self.unreferenced} of {total} lines have no reference (left out of CER/WER)"

    def as_dict(self) -> dict:
        return {"origin": self.origin, "cer": self.cer, "wer": self.wer, "normalization": self.normalization,
                "totals": asdict(self.total), "unreferenced_lines": self.unreferenced,
                "per_page": [{"page": p.page, "lines": p.lines, "unreferenced_lines": p.unreferenced,
                              "cer": p.rates.cer, "wer": p.rates.wer} for p in self.per_page]}


def evaluate(document: Document, origin: str = "htr", match_threshold: float = 0.1,
             keep_unreferenced: bool = False) -> Evaluation:
    """CER/WER of ``document`` against its ground truth; ``origin`` is 'htr' or 'current'.

    Lines whose reference is empty are left out and counted (``Evaluation.unreferenced``);
    ``keep_unreferenced`` scores them as the ground truth's empty text instead.
    """
    result = Evaluation(origin=origin, keep_unreferenced=keep_unreferenced)
    for page in document.pages:
        if page.error is not None:
            continue
        lines = page_line_pairs(page, origin, match_threshold)
        pairs = [(ref or "", hyp) for ref, hyp in lines if ref is not None or keep_unreferenced]
        rates = score_pairs(pairs)
        result.per_page.append(PageScore(page=page.name, lines=len(pairs), rates=rates,
                                         unreferenced=len(lines) - len(pairs)))
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
        "unreferenced_lines": htr.unreferenced,
        "ref_chars": htr.total.ref_chars,
        "normalization": htr.normalization,
        "htr": {"cer": htr.cer, "wer": htr.wer},
    }
    if corrected is not None:
        out["corrected"] = {"cer": corrected.cer, "wer": corrected.wer}
    out["per_page"] = [{"page": p.page, "lines": p.lines, "unreferenced_lines": p.unreferenced,
                        "htr_cer": p.rates.cer, "corrected_cer": corrected_pages.get(p.page)} for p in htr.per_page]
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
    missing = result.get("unreferenced_lines") or 0
    if missing:
        rows.append(f"{missing} of {result['lines'] + missing} lines have no reference (left out of CER/WER)")
    return "\n".join(rows)


# -- was the page in the training data of the model that read it? -------------------------------------

TRAIN, VALIDATION, HELD_OUT, NOT_IN_DATA, UNKNOWN = ("train", "validation", "held out", "not in the model's data",
                                                      "unknown")
_PROJECT = Path(__file__).resolve().parents[2]


def recognition_model(document: Document) -> tuple[Optional[str], Optional[Path]]:
    """(engine, model file) that read the document, from its recognition processing record."""
    record = next((r for r in reversed(document.processing) if r.step == "recognition"), None)
    if record is None:
        return None, None
    name = record.settings.get("model")
    if not name:
        return record.engine, None
    if Path(str(name)).is_file():
        return record.engine, Path(str(name))
    from .model_registry import list_models

    for info in list_models():
        if info.path.name == name or info.name == name:
            return record.engine, info.path
    return record.engine, None


def _key(path: str) -> str:
    return str(Path(path).with_suffix(""))


def _split_file(card: dict) -> Optional[Path]:
    """The split file of the model's first training run (``training/<work>/split.json``), when it is here."""
    for phase in (card.get("training") or {}).get("phases") or []:
        candidate = _PROJECT / str(phase.get("work", "")) / "split.json"
        if phase.get("work") and candidate.is_file():
            return candidate
    return None


def training_split(document: Document, card: Optional[dict] = None, split: Optional[dict] = None
                   ) -> dict[str, dict]:
    """Per page name: ``{"split": train | validation | held out | not in the model's data | unknown, "how": ...}``.

    The model card (``<model>.json`` beside the model) lists the pages it held out
    (``training.held_out``) and the data sets it was trained on; the training run's
    ``split.json`` (when it is in this checkout) has the full train/validation/test split. Pages
    are matched by path, else by file name when that name is unique in the split.
    """
    import json

    from .model_registry import read_card

    engine, model = recognition_model(document)
    if card is None:
        card = read_card(model) if model is not None else {}
    if split is None and card:
        found = _split_file(card)
        split = json.loads(found.read_text(encoding="utf-8")) if found else None
    out: dict[str, dict] = {}
    if not card:
        why = "the engine reported no model" if model is None else f"{model.name} has no model card"
        return {p.name: {"split": UNKNOWN, "how": why} for p in document.pages}
    by_path: dict[str, str] = {}
    if split:
        for kind, label in (("train", TRAIN), ("validation", VALIDATION), ("test", HELD_OUT)):
            for group in ("pages", "lines"):
                for path in (split.get(group) or {}).get(kind, []):
                    by_path[_key(path)] = label
    stems: dict[str, set] = {}
    for path, label in by_path.items():
        stems.setdefault(Path(path).name, set()).add(label)
    training = card.get("training") or {}
    held_out = training.get("held_out") or {}
    names = [d.get("name") for d in training.get("data") or [] if d.get("name")]
    for page in document.pages:
        key = _key(page.image.path)
        if key in by_path:
            out[page.name] = {"split": by_path[key], "how": "path in the training run's split.json"}
            continue
        stem = Path(key).name
        if len(stems.get(stem, ())) == 1:
            out[page.name] = {"split": next(iter(stems[stem])), "how": "file name in the training run's split.json"}
            continue
        parts = Path(page.image.path).parts
        dataset = next((n for n in names if n in parts), None)
        if any(_key(page.image.path).endswith(_key(h)) or Path(_key(h)).name == stem
               for h in held_out.get(dataset or "", [])):
            out[page.name] = {"split": HELD_OUT, "how": "listed in the model card's training.held_out"}
        elif dataset is not None:
            out[page.name] = {"split": TRAIN, "how": f"its data set {dataset} trained the model and the card "
                                                     "does not list it as held out"}
        else:
            out[page.name] = {"split": NOT_IN_DATA, "how": "not in any data set the model card names"}
    return out


def training_note(marks: dict[str, dict]) -> str:
    """"2 of 3 pages were in the model's training data (train or validation split): their CER flatters it"."""
    seen = [name for name, m in marks.items() if m["split"] in (TRAIN, VALIDATION)]
    if not marks or not seen:
        return ""
    return (f"{len(seen)} of {len(marks)} pages were in the training data of the model that read them "
            f"({', '.join(seen[:5])}{' …' if len(seen) > 5 else ''}): their CER flatters the model")
