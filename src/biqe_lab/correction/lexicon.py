"""The cheap tier: noisy-channel word correction from Debian word lists, hunspell stems, bundled vocabularies and a learned confusion model."""
from __future__ import annotations

import json
import math
import random
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ..errors import ModelError
from ..model import Producer
from ..posteriors import LinePosteriors
from ..version import __version__
from .presets import Preset
from .step import LineInput, Proposal

LETTERS = re.compile(r"[^\W\d_]+")  # a correctable word: letters only (d’ and -ment are separate tokens)
DICT_DIR = Path("/usr/share/dict")
HUNSPELL_DIR = Path("/usr/share/hunspell")


def data_dir() -> Path:
    return Path(str(resources.files("biqe_lab.correction").joinpath("data")))


# -- lexicon ------------------------------------------------------------------------------------------
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


# -- confusion model ----------------------------------------------------------------------------------
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


# -- the noisy channel --------------------------------------------------------------------------------
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


def uncertain_words(line: LineInput, preset: Preset, lexicon: Lexicon) -> list[tuple[int, int, str]]:
    """(start, end, word) of the words the recognizer was unsure of and the lexicon does not know."""
    out = []
    for m in LETTERS.finditer(line.text):
        word = m.group()
        if len(word) < preset.min_word_length or word in lexicon or sum(c.isupper() for c in word) > 1:
            continue  # short, known, or capitals inside (names, acronyms: left as read)
        if line.char_confidences:
            conf = min(line.char_confidences[m.start():m.end()])
        else:
            conf = line.confidence if line.confidence is not None else 0.0
        if conf < preset.confidence_threshold:
            out.append((m.start(), m.end(), word))
    return out


def apply_replacements(text: str, replacements: list[tuple[int, int, str]]) -> str:
    for start, end, word in sorted(replacements, reverse=True):
        text = text[:start] + word + text[end:]
    return text


class LexiconBackend:
    """Cheap tier: for each uncertain out-of-lexicon word, the best noisy-channel candidate if it beats keeping it."""

    origin = "lexicon"

    def __init__(self, preset: Preset, confusions: Optional[ConfusionModel] = None) -> None:
        self.preset = preset
        self.lexicon = load_lexicon(preset.wordlists, preset.hunspell, preset.vocabularies)
        self.confusions = confusions or load_confusions(preset.confusions)
        self.channel = NoisyChannel(self.lexicon, self.confusions, preset.max_word_edits, preset.diacritics_as_read,
                                    preset.max_long_word_edits)
        self.producer = Producer(engine="biqe-lexicon", model=f"noisy-channel:{preset.confusions}",
                                 version=__version__, prompt_version=None)

    def settings(self) -> dict:
        return {"lexicon_words": len(self.lexicon), "lexicons": list(self.lexicon.sources),
                "confusions": self.confusions.meta.get("source", ""), "keep_bias": self.confusions.keep_bias,
                "posterior_weight": self.confusions.posterior_weight,
                "posterior_keep_bias": self.confusions.posterior_keep_bias.get(self.preset.name)}

    def margins(self, line: LineInput, preset: Preset) -> list[tuple[int, int, str, float]]:
        """(start, end, best candidate, its score minus the score of keeping the word as read) per uncertain word."""
        out = []
        for start, end, word in uncertain_words(line, preset, self.lexicon):
            keep, *others = self.channel.options(word, 1, self.evidence(line), (start, end))
            if others:
                out.append((start, end, others[0][0], others[0][1] - keep[1]))
        return out

    def evidence(self, line: LineInput) -> Optional[LinePosteriors]:
        """The line's posteriors where this preset's tuning chose them as the channel, else None (confusions)."""
        return line.posteriors if self.preset.name in self.confusions.posterior_keep_bias else None

    def keep_bias(self, line: LineInput) -> float:
        """How much better than keeping a word a candidate must score (tuned per channel and preset)."""
        if self.evidence(line) is None:
            return self.confusions.keep_bias
        return self.confusions.posterior_keep_bias[self.preset.name]

    def propose(self, lines: list[LineInput], preset: Preset) -> list[Proposal]:
        return [Proposal(line.id, apply_replacements(line.text, [(s, e, w) for s, e, w, margin
                                                                  in self.margins(line, preset)
                                                                  if margin > self.keep_bias(line)]))
                for line in lines]
