"""``preset=auto``: the correction preset chosen from the recognized text.

Evidence is the lexicon hit rate of each single-language preset (its word lists, hunspell
stems and training vocabulary: language and period): the share of the document's recognized
words that the preset's lexicon knows, counted over the words that tell the presets apart
(a word every lexicon knows, such as "in" or "de", says nothing). The best preset is taken when its rate is high enough
and clearly ahead of the next. Before the words, a preset's own signs (``[auto] signs``: the abbreviation
signs of medieval Latin) decide when enough of the lines carry them; otherwise (too little text, or no clear winner) the
conservative ``generic_historical``. The evidence grows page by page (page k is corrected
with the choice made on pages 1..k), so a long document needs no second pass and a line set
(one line a page) settles once enough words are read.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Optional

from ..defaults import AUTO_PRESET, FALLBACK_PRESET, preset_names
from ..model import Page, StepWarning
from .lexicon import LETTERS, load_lexicon
from .presets import load_preset

MIN_WORDS = 15  # fewer telling words than this: not enough evidence, the fallback preset
MIN_RATE = 0.2  # the winner's lexicon must know at least this share of the telling words
MIN_LEAD = 0.08  # and lead the next preset by this much
# A preset whose signs are in at least MIN_SIGN_LINES of the lines (and MIN_SIGN_COUNT of them) wins. Chosen on the
# training pages as the bundled recognizer reads them (scripts/collect_htr_pairs.py, 78 pages): no peraire or
# stanford_memorials line carries one of medieval_latin's signs; every cremma page that has them, 4.9 % or more.
MIN_SIGN_LINES = 0.03
MIN_SIGN_COUNT = 2


@dataclass(frozen=True)
class PresetChoice:
    """Which preset auto chose, on how many words, with every candidate's hit rate, and why."""

    preset: str
    words: int
    rates: dict[str, float]
    reason: str

    def summary(self) -> str:
        rates = ", ".join(f"{name} {rate:.0%}" for name, rate in sorted(self.rates.items(), key=lambda kv: -kv[1]))
        return f"{self.preset} ({self.reason}; lexicon hit rates on {self.words} telling words: {rates or 'none'})"


@lru_cache(maxsize=1)
def candidates() -> tuple[str, ...]:
    """The presets auto chooses among: those of one language (the fallback covers the rest)."""
    return tuple(n for n in preset_names() if n != FALLBACK_PRESET and len(load_preset(n).languages) == 1)


def words_of(texts: Iterable[str]) -> list[str]:
    """The words (letters only, two or more) of recognized lines."""
    return [w for text in texts for w in LETTERS.findall(text) if len(w) >= 2]


class Evidence:
    """Word counts and per-candidate lexicon hits, accumulated over a document's pages."""

    def __init__(self) -> None:
        self.words = 0  # words that not every candidate's lexicon knows
        self.hits: Counter = Counter()
        self.lines = 0  # lines with text
        self.sign_lines: Counter = Counter()  # per candidate: lines with one of its signs

    def add(self, texts: Iterable[str]) -> None:
        lexicons = {name: load_lexicon(p.wordlists, p.hunspell, p.vocabularies)
                    for name in candidates() if (p := load_preset(name))}
        signs = {name: set(sign) for name in candidates() if (sign := load_preset(name).signs)}
        texts = [t for t in texts if t.strip()]
        self.lines += len(texts)
        for text in texts:
            self.sign_lines.update(name for name, chars in signs.items() if chars & set(text))
        for word in words_of(texts):
            knowing = [name for name, lexicon in lexicons.items() if word in lexicon]
            if len(knowing) == len(lexicons):
                continue  # known everywhere: no evidence either way
            self.words += 1
            self.hits.update(knowing)

    def choose(self) -> PresetChoice:
        rates = {n: (self.hits[n] / self.words if self.words else 0.0) for n in candidates()}
        ranked = sorted(rates.items(), key=lambda kv: -kv[1])
        if self.sign_lines:
            name, lines = self.sign_lines.most_common(1)[0]
            if lines >= MIN_SIGN_COUNT and lines / self.lines >= MIN_SIGN_LINES:
                return PresetChoice(name, self.words, rates,
                                    f"its signs ({load_preset(name).signs}) are in {lines} of {self.lines} lines")
        if self.words < MIN_WORDS:
            return PresetChoice(FALLBACK_PRESET, self.words, rates, f"fewer than {MIN_WORDS} telling words read")
        best, rate = ranked[0]
        lead = rate - (ranked[1][1] if len(ranked) > 1 else 0.0)
        if rate < MIN_RATE:
            return PresetChoice(FALLBACK_PRESET, self.words, rates, f"no preset's lexicon knows {MIN_RATE:.0%} of the words")
        if lead < MIN_LEAD:
            return PresetChoice(FALLBACK_PRESET, self.words, rates,
                                f"{best} leads by less than {MIN_LEAD * 100:.0f} points")
        return PresetChoice(best, self.words, rates, f"its lexicon knows most words, {lead * 100:.0f} points ahead")


def choose_preset(texts: Iterable[str]) -> PresetChoice:
    """The preset auto would choose for these recognized lines."""
    evidence = Evidence()
    evidence.add(texts)
    return evidence.choose()


@dataclass
class AutoCorrector:
    """The correction step with ``preset=auto`` for one run: chooses, then hands each page to that preset's step.

    Made fresh for each run (it holds the run's evidence); the preset correctors it uses are
    loaded once per process by ``load``.
    """

    tier: str
    load: "callable"  # (tier, preset name) -> Corrector, cached by the caller
    evidence: Evidence = field(default_factory=Evidence)
    chosen: dict[str, str] = field(default_factory=dict)  # page name -> preset
    last: Optional[PresetChoice] = None

    @property
    def preset_name(self) -> str:
        return AUTO_PRESET

    def correct(self, page: Page) -> list[StepWarning]:
        self.evidence.add(v.text for line in page.lines if (v := line.variant("htr")) is not None)
        self.last = self.evidence.choose()
        self.chosen[page.name] = self.last.preset
        return self.load(self.tier, self.last.preset).correct(page)

    def warning(self) -> str:
        counts = Counter(self.chosen.values())
        pages = ", ".join(f"{name} for {n} page{'s' * (n != 1)}" for name, n in counts.most_common())
        return f"preset auto chose {pages or 'nothing (no page corrected)'}; at the end: " + (
            self.last.summary() if self.last else "no text")

    def describe(self) -> dict:
        used = list(dict.fromkeys(self.chosen.values())) or [FALLBACK_PRESET]
        info = self.load(self.tier, used[-1]).describe()
        settings = dict(info["settings"])
        settings["preset"] = AUTO_PRESET
        settings["preset_choice"] = {
            "presets": used, "pages": dict(self.chosen),
            "final": {"preset": self.last.preset, "words": self.last.words, "reason": self.last.reason,
                      "rates": {k: round(v, 4) for k, v in self.last.rates.items()}} if self.last else None,
            "rule": f"a preset whose signs are in >= {MIN_SIGN_COUNT} lines and {MIN_SIGN_LINES:.0%} of them; else the best "
                    f"single-language preset if >= {MIN_WORDS} words, hit rate >= {MIN_RATE:.0%} and "
                    f"{MIN_LEAD * 100:.0f} points ahead; else {FALLBACK_PRESET}"}
        return {**info, "settings": settings, "warnings": [*info["warnings"], self.warning()]}
