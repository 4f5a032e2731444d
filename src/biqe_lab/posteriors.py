"""A recognized line's CTC posteriors, kept for correction: how well another word fits the frames of a word as read."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

FLOOR = 1e-7  # probabilities are clipped here before the log (a label the network all but excluded)


@dataclass(frozen=True)
class LinePosteriors:
    """Per-frame log-probabilities of a CTC recognizer's labels for one line, and where each read character lies.

    ``logp`` is (frames, labels) with label 0 the CTC blank; ``spans[i]`` is the (first, last) frame
    of the i-th character of ``text`` (greedy decoding); ``labels`` maps a character to its label.
    """

    text: str
    logp: np.ndarray
    spans: tuple[tuple[int, int], ...]
    labels: Mapping[str, int]

    @classmethod
    def from_decoding(cls, text: str, probs: np.ndarray, decoded: Sequence[tuple[str, int, int]],
                      labels: Mapping[str, int]) -> Optional["LinePosteriors"]:
        """From softmax outputs (labels, frames) and the decoder's (character, first, last frame) of ``text``.

        None when the decoding does not spell ``text`` one character per label (multi-character labels,
        display reordering): the evidence would point at the wrong frames.
        """
        if len(decoded) != len(text) or "".join(c for c, _, _ in decoded) != text:
            return None
        logp = np.log(np.clip(np.asarray(probs, dtype=np.float32).T, FLOOR, 1.0))
        return cls(text, logp, tuple((int(s), int(e)) for _, s, e in decoded), labels)

    def window(self, start: int, end: int) -> tuple[int, int]:
        """Frames [first, stop) that characters ``start:end`` of the text may use: up to the neighbours' frames."""
        first = self.spans[start - 1][1] + 1 if start > 0 else 0
        stop = self.spans[end][0] if end < len(self.spans) else self.logp.shape[0]
        return first, stop

    def scores(self, start: int, end: int, words: Sequence[str]) -> list[float]:
        """log P(word | frames of characters start:end) per word, summed over all CTC alignments.

        A word with a character the model cannot write, or too long for the frames, scores -inf.
        """
        import torch

        first, stop = self.window(start, end)
        frames = stop - first
        out = [-math.inf] * len(words)
        targets, index = [], []
        for i, word in enumerate(words):
            labels = [self.labels.get(ch) for ch in word]
            if word and None not in labels:
                targets.append(labels)
                index.append(i)
        if not targets or frames <= 0:
            return out
        logp = torch.from_numpy(self.logp[first:stop]).unsqueeze(1).expand(frames, len(targets), -1)
        flat = torch.tensor([label for t in targets for label in t], dtype=torch.long)
        loss = torch.nn.functional.ctc_loss(logp, flat, torch.full((len(targets),), frames, dtype=torch.long),
                                            torch.tensor([len(t) for t in targets], dtype=torch.long),
                                            blank=0, reduction="none", zero_infinity=False)
        for i, value in zip(index, loss.tolist()):
            out[i] = -value if math.isfinite(value) else -math.inf
        return out


def save_lines(path: Path, lines: Sequence[Optional[LinePosteriors]]) -> None:
    """Keep a page's line posteriors in one compressed file (for tuning the correction tiers offline)."""
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, line in enumerate(lines):
        if line is None:
            meta.append(None)
            continue
        arrays[f"logp{i}"] = line.logp.astype(np.float16)
        arrays[f"spans{i}"] = np.asarray(line.spans, dtype=np.int32).reshape(-1, 2)
        meta.append(line.text)
    labels = next((dict(line.labels) for line in lines if line is not None), {})
    arrays["meta"] = np.frombuffer(json.dumps({"texts": meta, "labels": labels}).encode("utf-8"), dtype=np.uint8)
    np.savez_compressed(path, **arrays)


def load_lines(path: Path) -> list[Optional[LinePosteriors]]:
    """The line posteriors written by ``save_lines``, in line order (None where a line had none)."""
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
        return [None if text is None else
                LinePosteriors(text, data[f"logp{i}"].astype(np.float32),
                               tuple((int(a), int(b)) for a, b in data[f"spans{i}"]), meta["labels"])
                for i, text in enumerate(meta["texts"])]
