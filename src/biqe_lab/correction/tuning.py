"""Choosing a correction tier's settings on training pages: errors per setting, and a guard on the worst page."""
from __future__ import annotations

import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Callable, Hashable, Iterable

from ..evaluation import Rates, score_pairs
from ..posteriors import load_lines
from .step import LineInput

MAX_PAGE_LOSS = 0.25  # CER points a training page may lose at the chosen setting (the goal allows 0.5 held out)


def score_setting(lines: Iterable[tuple[str, str, str, str]]) -> tuple[Rates, float]:
    """Corrected rates and the worst page's CER change (points) of (page, reference, raw, corrected) lines."""
    pages: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for page, ref, raw, corrected in lines:
        pages[page].append((ref, raw, corrected))
    total = score_pairs([(ref, c) for rows in pages.values() for ref, _, c in rows])
    worst = max(100 * (score_pairs([(ref, c) for ref, _, c in rows]).cer - score_pairs([(ref, r) for ref, r, _ in rows]).cer)
                for rows in pages.values())
    return total, worst


def guarded_choice(grid: dict[Hashable, tuple[int, float]], conservative: Callable[[Hashable], object]) -> Hashable:
    """The setting with the fewest errors among those whose worst page loses at most MAX_PAGE_LOSS points.

    ``grid`` maps a setting to (errors, worst page change); ties go to the largest ``conservative(setting)``.
    """
    safe = {k: errors for k, (errors, worst) in grid.items() if worst <= MAX_PAGE_LOSS}
    fewest = min(safe.values())
    return max((k for k, errors in safe.items() if errors == fewest), key=conservative)


def training_rows(paths: list[Path], split: dict, root: Path) -> list[dict]:
    """The collected lines (scripts/collect_htr_pairs.py jsonl files) of the split's training pages only."""
    train_pages = {str((root / p).with_suffix("")) for p in split["pages"]["train"]}
    rows = [json.loads(l) for p in paths for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
    return [r for r in rows if str(Path(r["page"]).with_suffix("")) in train_pages]


def line_inputs(rows: list[dict]) -> list[LineInput]:
    """What a back-end sees of each collected line (scripts/collect_htr_pairs.py), posteriors included if kept."""
    files = lru_cache(maxsize=4)(lambda name: load_lines(Path(name)))
    return [LineInput(str(i), r["raw"], r["conf"], r["char_conf"],
                      files(r["posteriors"][0])[r["posteriors"][1]] if r.get("posteriors") else None)
            for i, r in enumerate(rows)]
