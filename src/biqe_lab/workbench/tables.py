"""Evaluation as pandas tables: per page, per dataset, per tier, per line, and character confusions (empty without ground truth)."""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import pandas as pd

from ..correction.step import char_diff
from ..evaluation import hypothesis, normalize, page_has_ground_truth, paired_lines, score_pairs
from .runs import NO_CORRECTION, Run

EMPTY = "∅"
SPACE = "␣"


def char_ops(a: str, b: str) -> list[tuple[str, str, str]]:
    """The minimal character edit from ``a`` to ``b`` as (op, a_part, b_part) spans (equal/replace/delete/insert).

    The correction step's own diff (a Levenshtein alignment, as the CER counts), so review and
    evaluation colour the same edits.
    """
    return char_diff(a, b)


def _visible(ch: str) -> str:
    return SPACE if ch == " " else (ch or EMPTY)


def confusions(pairs: Iterable[tuple[str, str]]) -> Counter:
    """Counts of character errors (reference char, recognized char); ∅ marks a deletion or insertion."""
    counts: Counter = Counter()
    for ref, hyp in pairs:
        ref, hyp = normalize(ref), normalize(hyp)
        for op, a, b in char_ops(ref, hyp):
            if op == "replace":
                for x, y in zip(a, b):
                    counts[(_visible(x), _visible(y))] += 1
            elif op == "delete":
                counts.update((_visible(x), EMPTY) for x in a)
            elif op == "insert":
                counts.update((EMPTY, _visible(y)) for y in b)
    return counts


def _runs(runs: Run | Sequence[Run]) -> list[Run]:
    return [runs] if isinstance(runs, Run) else list(runs)


NO_GROUND_TRUTH = "no ground truth"


def page_table(runs: Run | Sequence[Run]) -> pd.DataFrame:
    """One row per page and run: lines scored and without reference, errors, CER and WER (and after correction).

    The numbers are those of :func:`biqe_lab.evaluation.evaluate` (``biqe-lab evaluate``);
    ``model's split`` says whether the page was in the training data of the model that read it.
    Runs without ground truth give no row.
    """
    rows = []
    for run in _runs(runs):
        if run.htr is None:
            continue
        corrected = {p.page: p.rates for p in run.corrected.per_page} if run.corrected else {}
        for p in run.htr.per_page:
            row = {"dataset": run.dataset, "tier": run.tier, "page": p.page, "lines": p.lines,
                   "no reference": p.unreferenced, "ref_chars": p.rates.ref_chars,
                   "char_errors": p.rates.char_errors, "CER": p.rates.cer, "WER": p.rates.wer}
            if p.page in corrected:
                row["CER corrected"] = corrected[p.page].cer
                row["WER corrected"] = corrected[p.page].wer
            row["model's split"] = run.training.get(p.page, {}).get("split", "unknown")
            rows.append(row)
    return pd.DataFrame(rows)


def dataset_table(runs: Run | Sequence[Run]) -> pd.DataFrame:
    """One row per dataset and tier: corpus totals (errors over all reference characters, not a mean of pages)."""
    rows = []
    for run in _runs(runs):
        if run.htr is None:
            rows.append({"dataset": run.dataset, "tier": run.tier, "pages": len(run.document.pages),
                         "lines": sum(len(p.lines) for p in run.document.pages), "CER": None,
                         "note": NO_GROUND_TRUTH, "processing s": run.seconds})
            continue
        row = {"dataset": run.dataset, "tier": run.tier, "pages": len(run.htr.per_page), "lines": run.htr.lines,
               "no reference": run.htr.unreferenced,
               "ref_chars": run.htr.total.ref_chars, "char_errors": run.htr.total.char_errors,
               "CER": run.htr.cer, "WER": run.htr.wer}
        if run.corrected is not None:
            row["CER corrected"] = run.corrected.cer
            row["WER corrected"] = run.corrected.wer
        row["processing s"] = run.seconds
        rows.append(row)
    return pd.DataFrame(rows)


def tier_table(runs: Run | Sequence[Run]) -> pd.DataFrame:
    """CER per dataset (rows) and tier (columns): raw recognition, then the text after each tier's correction."""
    rows: dict[str, dict] = {}
    for run in _runs(runs):
        if run.htr is None:
            continue
        row = rows.setdefault(run.dataset, {"dataset": run.dataset})
        row.setdefault("CER htr (no correction)", run.htr.cer)
        if run.tier != NO_CORRECTION and run.corrected is not None:
            row[f"CER after {run.tier}"] = run.corrected.cer
    return pd.DataFrame(list(rows.values()))


LINE_COLUMNS = ["dataset", "tier", "page", "line", "line_id", "reference", "recognized", "confidence", "scored",
                "ref_chars", "char_errors", "CER"]


def line_table(runs: Run | Sequence[Run], origin: str = "htr") -> pd.DataFrame:
    """One row per line: reference, recognized text (``origin``), line confidence, errors and CER.

    Summing ``char_errors`` and ``ref_chars`` gives the corpus CER of ``evaluate``: a line
    without reference has ``scored`` False and no errors counted (unless the run keeps them).
    Without ground truth the table is empty.
    """
    rows = []
    for run in _runs(runs):
        if run.htr is None:
            continue
        for page in run.document.pages:
            if page.error is not None:
                continue
            for index, (ref, line) in enumerate(paired_lines(page) if page_has_ground_truth(page) else []):
                hyp = hypothesis(line, origin) if line is not None else ""
                variant = (line.current() if origin == "current" else line.variant(origin)) if line else None
                scored = ref is not None or run.keep_unreferenced
                rates = score_pairs([(ref or "", hyp)])
                rows.append({"dataset": run.dataset, "tier": run.tier, "page": page.name, "line": index + 1,
                             "line_id": line.id if line else None, "reference": normalize(ref or ""),
                             "recognized": normalize(hyp),
                             "confidence": variant.confidence if variant else None, "scored": scored,
                             "ref_chars": rates.ref_chars if scored else 0,
                             "char_errors": rates.char_errors if scored else 0,
                             "CER": rates.cer if rates.ref_chars else None})
    return pd.DataFrame(rows, columns=LINE_COLUMNS)


def confusion_table(runs: Run | Sequence[Run], origin: str = "htr", top: int = 15,
                    substitutions_only: bool = False) -> pd.DataFrame:
    """The ``top`` most frequent character errors: reference char, recognized char (∅: none), count, share.

    The share is of all character errors, also with ``substitutions_only``.
    """
    lines = line_table(runs, origin)
    lines = lines[lines["scored"]] if len(lines) else lines
    counts = confusions(zip(lines["reference"], lines["recognized"])) if len(lines) else Counter()
    total = sum(counts.values())
    if substitutions_only:
        counts = Counter({k: n for k, n in counts.items() if EMPTY not in k})
    return pd.DataFrame([{"reference": a, "recognized": b, "count": n, "share of errors": n / total}
                         for (a, b), n in counts.most_common(top)],
                        columns=["reference", "recognized", "count", "share of errors"])


def worst_lines(runs: Run | Sequence[Run], n: int = 8, origin: str = "htr", min_chars: int = 5) -> pd.DataFrame:
    """The ``n`` lines with the highest CER among lines of at least ``min_chars`` reference characters."""
    lines = line_table(runs, origin)
    if not len(lines):
        return lines
    lines = lines[(lines["ref_chars"] >= min_chars) & lines["line_id"].notna() & lines["scored"]]
    return lines.sort_values(["CER", "ref_chars"], ascending=[False, False]).head(n).reset_index(drop=True)
