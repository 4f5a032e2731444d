"""Post-correction of recognized text: tiers (cheap / balanced / best), presets, guard rails and review."""
from __future__ import annotations

import os
from typing import Mapping, Optional

from ..defaults import CORRECTION_TIERS
from ..errors import InputError
from .presets import DEFAULT_PRESET, Preset, list_presets, load_preset, preset_names
from .review import LineReview, review
from .step import Corrector, LineInput, Proposal, char_diff, correct_document

TIERS = tuple(t for t in CORRECTION_TIERS if t != "none")  # the tiers that correct

__all__ = ["TIERS", "Corrector", "LineInput", "LineReview", "Preset", "Proposal", "char_diff", "correct_document",
           "list_presets", "load_corrector", "load_preset", "preset_names", "review", "DEFAULT_PRESET"]


def load_corrector(tier: str, preset: str = DEFAULT_PRESET,
                   settings: Optional[Mapping[str, str]] = None) -> Corrector:
    """The correction step of ``tier`` with ``preset`` (a name or a .toml path).

    ``settings`` (else the environment) configures ``best``: ``BIQE_LLM_BASE_URL``,
    ``BIQE_LLM_MODEL``, ``BIQE_LLM_API_KEY``; and the local model of ``balanced``:
    ``BIQE_LOCAL_LM`` (a transformers causal-LM folder; default SmolLM2-135M-Instruct).
    When ``best`` has no endpoint it runs as ``balanced`` and says so in its warnings.
    """
    conf = dict(os.environ if settings is None else settings)
    chosen = load_preset(preset)
    if tier == "cheap":
        from .cheap import LexiconBackend

        return Corrector("cheap", LexiconBackend(chosen), chosen)
    if tier == "balanced":
        from .local_lm import LocalLMBackend

        return Corrector("balanced", LocalLMBackend(chosen, conf.get("BIQE_LOCAL_LM") or None), chosen)
    if tier == "best":
        from .remote import RemoteBackend, RemoteSettings

        remote = RemoteSettings.from_mapping(conf)
        if remote is None:
            from .local_lm import LocalLMBackend

            warning = ("correction tier 'best' has no LLM endpoint configured (BIQE_LLM_BASE_URL, BIQE_LLM_MODEL); "
                       "it ran as 'balanced'")
            return Corrector("best", LocalLMBackend(chosen, conf.get("BIQE_LOCAL_LM") or None), chosen,
                             warnings=[warning], ran_as="balanced")
        return Corrector("best", RemoteBackend(remote), chosen)
    raise InputError(f"unknown correction tier {tier!r}; choose one of {', '.join(TIERS)}", field="llm_tier")
