"""Guard rails on correction proposals: edit-distance cap, hallucination, modernization and line-integrity checks."""
from __future__ import annotations

import re
import unicodedata
from typing import Optional

from rapidfuzz.distance import Levenshtein

from .presets import Preset

WORD = re.compile(r"[^\W\d_]+(?:[’'\-][^\W\d_]+)*", re.UNICODE)


def words(text: str) -> list[str]:
    return WORD.findall(text)


def normalize_text(text: str, preset: Preset) -> str:
    """The preset's normalization of a proposal (Unicode form; optional space collapsing)."""
    text = unicodedata.normalize(preset.unicode_form, text)
    if preset.collapse_spaces:
        text = re.sub(r"[ \t]+", " ", text).strip()
    return text


def check(raw: str, proposal: Optional[str], preset: Preset) -> Optional[str]:
    """Why ``proposal`` must not replace ``raw`` (a short reason), or None when it passes every guard."""
    g = preset.guards
    if proposal is None:
        return "no proposal for this line"
    if "\n" in proposal or "\r" in proposal:
        return "proposal spans several lines (lines are never split or merged)"
    if raw.strip() and not proposal.strip():
        return "proposal deletes the line"
    if proposal == raw:
        return None
    raw_words = words(raw)
    new_words = words(proposal)
    similarity = g.get("novel_word_similarity", 0.6)  # normalized Levenshtein similarity to some raw word
    novel = [w for w in new_words if w not in raw_words
             and not any(Levenshtein.normalized_similarity(w.lower(), r.lower()) >= similarity for r in raw_words)]
    if novel and len(novel) > g.get("max_novel_word_ratio", 0.34) * max(len(new_words), 1):
        return f"hallucinated words: {' '.join(novel[:5])}"
    distance = Levenshtein.distance(raw, proposal)
    cap = g.get("max_edit_ratio", 0.3) * max(len(raw), 1)
    if distance > max(cap, 1.0):
        return f"edit distance {distance} over the cap {cap:.1f} ({g.get('max_edit_ratio', 0.3):.0%} of {len(raw)} chars)"
    if len(proposal) > g.get("max_length_ratio", 1.3) * len(raw) + 5:
        return f"proposal is much longer than the line ({len(proposal)} vs {len(raw)} chars)"
    lost = sorted({c for c in preset.protected_chars if raw.count(c) > proposal.count(c)})
    if lost:
        return f"modernization: removes protected sign(s) {''.join(lost)}"
    raw_lower = {w.lower() for w in raw_words}
    new_lower = {w.lower() for w in new_words}
    for old, modern in preset.modern_forms.items():
        if old.lower() in raw_lower and modern.lower() in new_lower and old.lower() not in new_lower:
            return f"modernization: {old} -> {modern}"
    return None
