"""Correction presets: TOML data files naming languages, lexicons, prompt, normalization and never-modernize rules."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Union

from ..errors import InputError

from ..defaults import FALLBACK_PRESET, PRESETS_DIR, preset_names

DEFAULT_PRESET = FALLBACK_PRESET  # a real preset: what load_preset() gives without a name ("auto" is chosen above it)


@dataclass(frozen=True)
class Preset:
    """One document type's correction settings (see presets/*.toml for the fields)."""

    name: str
    description: str
    languages: tuple[str, ...]
    wordlists: tuple[str, ...]
    hunspell: tuple[str, ...]
    vocabularies: tuple[str, ...]
    confusions: str
    confidence_threshold: float
    min_word_length: int
    max_word_edits: int
    max_long_word_edits: int  # for words of LONG_WORD letters or more
    diacritics_as_read: bool
    guards: dict[str, float]
    unicode_form: str
    collapse_spaces: bool
    protected_chars: str
    signs: str  # characters only this preset's documents write (``[auto] signs``): evidence for ``preset=auto``
    modern_forms: dict[str, str]
    prompt_version: str
    system_prompt: str
    user_prompt: str
    source: str = field(default="", compare=False)

    def summary(self) -> dict:
        return {"name": self.name, "description": self.description, "languages": list(self.languages),
                "prompt_version": self.prompt_version}


def _build(data: dict, source: str) -> Preset:
    try:
        corr, guards, norm = data["correction"], data["guards"], data.get("normalization", {})
        never, prompt = data.get("never_modernize", {}), data["prompt"]
        return Preset(
            name=str(data["name"]), description=str(data.get("description", "")),
            languages=tuple(data.get("languages", ())), wordlists=tuple(data.get("wordlists", ())),
            hunspell=tuple(data.get("hunspell", ())), vocabularies=tuple(data.get("vocabularies", ())),
            confusions=str(data.get("confusions", "confusions.json")),
            confidence_threshold=float(corr.get("confidence_threshold", 0.9)),
            min_word_length=int(corr.get("min_word_length", 3)), max_word_edits=int(corr.get("max_word_edits", 2)),
            max_long_word_edits=int(corr.get("max_long_word_edits", corr.get("max_word_edits", 2))),
            diacritics_as_read=bool(corr.get("diacritics_as_read", True)),
            guards={k: float(v) for k, v in guards.items()},
            unicode_form=str(norm.get("unicode", "NFC")), collapse_spaces=bool(norm.get("collapse_spaces", False)),
            protected_chars=str(never.get("protected_chars", "")), signs=str(data.get("auto", {}).get("signs", "")),
            modern_forms={str(k): str(v) for k, v in never.get("forms", {}).items()},
            prompt_version=str(prompt["version"]), system_prompt=str(prompt["system"]),
            user_prompt=str(prompt["user"]), source=source)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"preset {source} is incomplete or malformed: {exc!r}") from exc


@lru_cache(maxsize=16)
def load_preset(name_or_path: Union[str, Path] = DEFAULT_PRESET) -> Preset:
    """A bundled preset by name (``biqe-lab presets list``) or a .toml file of the same shape."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PRESETS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise InputError(f"unknown correction preset {name_or_path!r}; known: {', '.join(preset_names())}")
    elif not path.is_file():
        raise InputError(f"preset file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read preset {path}: {exc}") from exc
    return _build(data, str(path))


def list_presets() -> list[Preset]:
    return [load_preset(n) for n in preset_names()]
