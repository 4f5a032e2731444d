"""Choosing a correction tier's settings on training pages: errors per setting, and a guard on the worst page."""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Hashable, Iterable

from ..evaluation import Rates, score_pairs

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
