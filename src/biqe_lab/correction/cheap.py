"""The cheap tier's back-end: each uncertain out-of-lexicon word replaced by its best noisy-channel candidate."""
from __future__ import annotations

from typing import Optional

from ..model import Producer
from ..posteriors import LinePosteriors
from ..version import __version__
from .channel import ConfusionModel, NoisyChannel, load_confusions
from .lexicon import LETTERS, Lexicon, load_lexicon
from .presets import Preset
from .step import LineInput, Proposal

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
