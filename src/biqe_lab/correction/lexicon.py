"""The word lists of the cheap and balanced tiers: Debian word lists, hunspell stems and bundled vocabularies as one Lexicon."""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from ..errors import ModelError

LETTERS = re.compile(r"[^\W\d_]+")  # a correctable word: letters only (d’ and -ment are separate tokens)
DICT_DIR = Path("/usr/share/dict")
HUNSPELL_DIR = Path("/usr/share/hunspell")


def data_dir() -> Path:
    return Path(str(resources.files("biqe_lab.correction").joinpath("data")))


def _read_wordlist(path: Path) -> Iterable[str]:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        word = line.strip()
        if word and " " not in word and not word.endswith("'s"):
            yield word


def _read_hunspell(path: Path) -> Iterable[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines[1:]:  # first line: the entry count
        word = line.split("/", 1)[0].split("\t", 1)[0].strip()
        if word and " " not in word and not word.startswith("#"):
            yield word


def read_vocabulary(path: Path) -> Counter:
    """A vocabulary file: one ``word<TAB>count`` a line (counts from training transcriptions)."""
    counts: Counter = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        word, _, count = line.partition("\t")
        if word:
            counts[word] += int(count or 1)
    return counts


@dataclass
class Lexicon:
    """Known words (lower case) with counts, their preferred spelling, and length buckets for search."""

    counts: Counter = field(default_factory=Counter)
    spelling: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def add(self, words: Iterable[str], count: int = 0) -> None:
        self.__dict__.pop("_total", None)
        self.__dict__.pop("_buckets", None)
        for word in words:
            low = word.lower()
            self.counts[low] += count
            if word == low or low not in self.spelling:  # a word ever written in lower case is not a name
                self.spelling[low] = word

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.spelling

    def __len__(self) -> int:
        return len(self.spelling)

    @property
    def total(self) -> int:
        """Counted words plus one per known word (add-one smoothing), computed once per change."""
        if "_total" not in self.__dict__:
            self._total = sum(self.counts.values()) + len(self.spelling)
        return self._total

    def logprior(self, word: str) -> float:
        return math.log((self.counts.get(word.lower(), 0) + 1) / self.total)

    def buckets(self) -> dict[int, list[str]]:
        """Candidate words by length: letters only, as the words they replace (no "aujourd'" for "aujourd")."""
        if not hasattr(self, "_buckets"):
            out: dict[int, list[str]] = defaultdict(list)
            for word in self.spelling:
                if LETTERS.fullmatch(word):
                    out[len(word)].append(word)
            self._buckets = dict(out)
        return self._buckets


@lru_cache(maxsize=8)
def load_lexicon(wordlists: tuple[str, ...], hunspell: tuple[str, ...], vocabularies: tuple[str, ...]) -> Lexicon:
    """The union of a preset's word lists, hunspell stems and bundled vocabularies (missing files skipped)."""
    lex = Lexicon()
    for name in wordlists:
        path = DICT_DIR / name
        if path.is_file():
            lex.add(_read_wordlist(path))
            lex.sources.append(str(path))
    for name in hunspell:
        path = HUNSPELL_DIR / f"{name}.dic"
        if path.is_file():
            lex.add(_read_hunspell(path))
            lex.sources.append(str(path))
    for name in vocabularies:
        path = data_dir() / name
        if path.is_file():
            for word, count in read_vocabulary(path).items():
                lex.add([word], count)
            lex.sources.append(f"biqe_lab:{name}")
    if not lex.spelling:
        raise ModelError(f"no lexicon found for {wordlists + hunspell + vocabularies}; install the Debian word "
                         "lists (wfrench, wamerican, wbritish) and hunspell dictionaries (scripts/setup.sh)")
    return lex
