"""The noisy channel: a confusion model of the recognizer's character errors and candidate words scored against a Lexicon."""
from __future__ import annotations

import json
import math
import random
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ..errors import ModelError
from ..posteriors import LinePosteriors
from .lexicon import Lexicon, data_dir

@dataclass
class ConfusionModel:
    """P(observed | intended) per character edit, learned from aligned (ground truth, recognizer output) pairs."""

    sub: dict[str, dict[str, float]]  # intended -> observed -> count
    ins: dict[str, float]  # observed char inserted -> count
    dele: dict[str, float]  # intended char deleted -> count
    seen: dict[str, float]  # intended char -> count
    alpha: float = 0.5
    keep_bias: float = 0.0  # extra log-score for keeping an unknown word (tuned on training pages)
    # with the recognizer's CTC posteriors as the channel (kraken engines): their weight, and the keep bias
    # per preset where training pages of its kind showed the posteriors do better (other presets: confusions)
    posterior_weight: float = 2.0
    posterior_keep_bias: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @classmethod
    def learn(cls, pairs: Iterable[tuple[str, str]]) -> "ConfusionModel":
        sub: dict[str, Counter] = defaultdict(Counter)
        ins: Counter = Counter()
        dele: Counter = Counter()
        seen: Counter = Counter()
        for ref, hyp in pairs:
            seen.update(ref)
            for op in Levenshtein.opcodes(ref, hyp):
                a, b = ref[op.src_start:op.src_end], hyp[op.dest_start:op.dest_end]
                if op.tag == "equal":
                    for ch in a:
                        sub[ch][ch] += 1
                elif op.tag == "replace":
                    for x, y in zip(a, b):
                        sub[x][y] += 1
                elif op.tag == "delete":
                    dele.update(a)
                else:
                    ins.update(b)
        return cls(sub={k: dict(v) for k, v in sub.items()}, ins=dict(ins), dele=dict(dele), seen=dict(seen))

    def to_json(self) -> dict:
        return {"sub": self.sub, "ins": self.ins, "dele": self.dele, "seen": self.seen, "alpha": self.alpha,
                "keep_bias": self.keep_bias, "posterior_weight": self.posterior_weight,
                "posterior_keep_bias": self.posterior_keep_bias, "meta": self.meta}

    @classmethod
    def load(cls, path: Path) -> "ConfusionModel":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"cannot read confusion model {path}: {exc}") from exc

    def _n(self, ch: str) -> float:
        return self.seen.get(ch.lower(), self.seen.get(ch, 0.0)) + 20 * self.alpha

    def logp_sub(self, intended: str, observed: str) -> float:
        row = self.sub.get(intended) or self.sub.get(intended.lower()) or {}
        count = row.get(observed, row.get(observed.lower(), 0.0))
        if intended == observed:
            return math.log((count + 10 * self.alpha) / self._n(intended))
        return math.log((count + self.alpha) / (self._n(intended) * 4))

    def logp_del(self, intended: str) -> float:
        return math.log((self.dele.get(intended, 0.0) + self.alpha) / (self._n(intended) * 4))

    def logp_ins(self, observed: str) -> float:
        total = sum(self.seen.values()) or 1.0
        return math.log((self.ins.get(observed, 0.0) + self.alpha) / (total / 8))

    def corrupt(self, word: str, rng: random.Random) -> str:
        """One recognizer-like error in ``word``, drawn from the learned confusions (synthetic noise)."""
        i = rng.randrange(len(word))
        ch = word[i]
        row = {k: v for k, v in (self.sub.get(ch) or {}).items() if k != ch and k.isalpha()}
        deletions = self.dele.get(ch, 0.0)
        if row and rng.random() * (sum(row.values()) + deletions) < sum(row.values()):
            choices, weights = zip(*row.items())
            return word[:i] + rng.choices(choices, weights)[0] + word[i + 1:]
        if len(word) > 3:
            return word[:i] + word[i + 1:]
        return word[:i] + ("c" if ch != "c" else "e") + word[i + 1:]

    def channel(self, intended: str, observed: str) -> float:
        """log P(observed | intended) along one minimal alignment."""
        score = 0.0
        for op in Levenshtein.opcodes(intended, observed):
            a, b = intended[op.src_start:op.src_end], observed[op.dest_start:op.dest_end]
            if op.tag in ("equal", "replace"):
                score += sum(self.logp_sub(x, y) for x, y in zip(a, b))
            elif op.tag == "delete":
                score += sum(self.logp_del(x) for x in a)
            else:
                score += sum(self.logp_ins(y) for y in b)
        return score


@lru_cache(maxsize=4)
def load_confusions(name: str) -> ConfusionModel:
    path = data_dir() / name
    if not path.is_file():
        raise ModelError(f"confusion model {name} is not in {data_dir()} (built by scripts/train_corrector.py)")
    return ConfusionModel.load(path)


def base_letter(ch: str) -> str:
    return unicodedata.normalize("NFD", ch)[:1].lower()


def changes_diacritics(observed: str, candidate: str) -> bool:
    """True when some edit from ``observed`` to ``candidate`` only adds, drops or swaps an accent."""
    for op in Levenshtein.opcodes(observed, candidate):
        if op.tag == "replace":
            for x, y in zip(observed[op.src_start:op.src_end], candidate[op.dest_start:op.dest_end]):
                if x.lower() != y.lower() and base_letter(x) == base_letter(y):
                    return True
    return False


def match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class NoisyChannel:
    """Candidate words for an observed one, scored log P(word) + log P(observed | word).

    P(observed | word) is the recognizer's own CTC posteriors over the frames of the word as read
    when the line carries them (``biqe_lab.posteriors``, kraken engines), else the confusion model
    learned from the recognizer's errors; the confusion model always proposes the candidates.
    """

    NOVEL_WORD_LOGP = math.log(0.01)  # P(a word is outside the lexicon: names, period spellings)
    NOVEL_CHAR_LOGP = math.log(1 / 30)  # each of its letters, uniformly

    LONG_WORD = 8  # letters from which a word may be `max_long_edits` away from its candidates
    POOL = 20  # candidates (best by the confusion model) re-scored against the posteriors

    def __init__(self, lexicon: Lexicon, confusions: ConfusionModel, max_edits: int = 2,
                 diacritics_as_read: bool = True, max_long_edits: Optional[int] = None) -> None:
        self.diacritics_as_read = diacritics_as_read
        self.lexicon = lexicon
        self.confusions = confusions
        self.max_edits = max_edits
        self.max_long_edits = max_edits if max_long_edits is None else max_long_edits
        self._cache: dict[str, list[tuple[str, float]]] = {}

    def clear_cache(self) -> None:
        self._cache.clear()

    def novel_logprior(self, observed: str) -> float:
        """log P(a word outside the lexicon spelled ``observed``)."""
        return self.NOVEL_WORD_LOGP + len(observed) * self.NOVEL_CHAR_LOGP

    def keep_score(self, observed: str) -> float:
        """The score of leaving an unknown word as the recognizer read it (a novel word, read without error)."""
        return self.novel_logprior(observed) + self.confusions.channel(observed, observed)

    def options(self, observed: str, limit: int, posteriors: Optional[LinePosteriors] = None,
                span: tuple[int, int] = (0, 0)) -> list[tuple[str, float]]:
        """Keeping the word as read (first), then up to ``limit`` lexicon candidates, best first, all scored.

        With ``posteriors`` (of the line; ``span`` = the word's character offsets in it) the channel is
        the weighted CTC log-likelihood of each word over the frames of the word as read.
        """
        if posteriors is None:
            return [(observed, self.keep_score(observed)),
                    *[c for c in self.candidates(observed, limit) if c[0] != observed]]
        pool = [w for w, _ in self.candidates(observed, self.POOL) if w != observed]
        fit = posteriors.scores(span[0], span[1], [observed, *pool])
        weight = self.confusions.posterior_weight
        keep = (observed, self.novel_logprior(observed) + weight * fit[0])
        scored = sorted(((w, self.lexicon.logprior(w) + weight * f) for w, f in zip(pool, fit[1:])
                         if math.isfinite(f)), key=lambda kv: -kv[1])
        return [keep, *scored[:limit]]

    def candidates(self, observed: str, limit: int = 5) -> list[tuple[str, float]]:
        """Up to ``limit`` lexicon words near ``observed`` (case matched), best first."""
        if observed in self._cache:
            return self._cache[observed][:limit]
        low = observed.lower()
        k = 1 if len(low) <= 4 else self.max_long_edits if len(low) >= self.LONG_WORD else self.max_edits
        found: dict[str, float] = {}
        buckets = self.lexicon.buckets()
        for length in range(max(1, len(low) - k), len(low) + k + 1):
            bucket = buckets.get(length)
            if not bucket:
                continue
            for word, _dist, _ in process.extract(low, bucket, scorer=Levenshtein.distance, score_cutoff=k,
                                                  limit=40):
                spelled = self.lexicon.spelling[word]
                shown = spelled if spelled != word else match_case(observed, word)
                if self.diacritics_as_read and changes_diacritics(observed, shown):
                    continue  # a diplomatic transcription keeps the accents as written (or not)
                score = self.lexicon.logprior(word) + self.confusions.channel(shown, observed)
                found[shown] = max(score, found.get(shown, -math.inf))
        ranked = sorted(found.items(), key=lambda kv: -kv[1])
        self._cache[observed] = ranked[:20]
        return ranked[:limit]
