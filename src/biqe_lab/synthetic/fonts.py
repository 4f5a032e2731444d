"""The handwriting fonts of synthetic pages: which Debian fonts are installed and which characters each draws."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from ..errors import DependencyMissingError

FONT_DIR = Path("/usr/share/fonts")
FONT_PACKAGES = ("fonts-dancingscript", "fonts-kristi", "fonts-dkg-handwriting", "fonts-ecolier-court")
# File-name fragments of those packages' fonts (DancingScript-*.otf, Kristi.ttf, dkg*.ttf, Ecolier-court.ttf).
FONT_NAME_FRAGMENTS = ("dancingscript", "kristi", "dkg", "ecolier")
FONT_SUFFIXES = (".ttf", ".otf")

_REFERENCE_SIZE = 100  # font size at which glyphs are measured before scaling to the page
_NOT_A_GLYPH = "\ue000"  # a private-use code point: fonts without it draw their "missing glyph" box


def handwriting_fonts(font_dir: Path = FONT_DIR) -> list[Path]:
    """The installed handwriting fonts of the Debian packages in FONT_PACKAGES, in a stable order."""
    fonts = sorted(
        p for p in font_dir.rglob("*")
        if p.suffix.lower() in FONT_SUFFIXES and p.is_file()
        and any(fragment in p.name.lower() for fragment in FONT_NAME_FRAGMENTS)
    ) if font_dir.is_dir() else []
    if not fonts:
        raise DependencyMissingError(
            f"no handwriting font found under {font_dir}; install one of the Debian packages "
            f"{', '.join(FONT_PACKAGES)} (apt-get install {' '.join(FONT_PACKAGES)})")
    return fonts


def _glyph_signature(font: ImageFont.FreeTypeFont, char: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def _draws_all(font: ImageFont.FreeTypeFont, text: str) -> bool:
    """Whether ``font`` has a glyph for every visible character of ``text`` (no missing-glyph boxes)."""
    missing = _glyph_signature(font, _NOT_A_GLYPH)
    return all(c.isspace() or _glyph_signature(font, c) != missing for c in set(text))


@lru_cache(maxsize=None)
def _reference_font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _REFERENCE_SIZE)


@lru_cache(maxsize=None)
def _font_draws(path: str, char: str) -> bool:
    return _draws_all(_reference_font(path), char)
