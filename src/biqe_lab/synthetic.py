"""Synthetic handwriting pages rendered with Debian handwriting fonts, with their PAGE ground truth."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import DependencyMissingError, InputError
from .export import render_page as render_export
from .geometry import hull
from .ingest import probe_image
from .model import Line, Page, Point, Producer, Region, TextVariant

FONT_DIR = Path("/usr/share/fonts")
FONT_PACKAGES = ("fonts-dancingscript", "fonts-kristi", "fonts-dkg-handwriting", "fonts-ecolier-court")
# File-name fragments of those packages' fonts (DancingScript-*.otf, Kristi.ttf, dkg*.ttf, Ecolier-court.ttf).
FONT_NAME_FRAGMENTS = ("dancingscript", "kristi", "dkg", "ecolier")
FONT_SUFFIXES = (".ttf", ".otf")

PRODUCER = Producer(engine="biqe_lab-synthetic")
DPI = (300, 300)
LINES_PER_PAGE = (8, 14)

# Short everyday sentences written for this module, free to reuse; only characters every font draws.
SENTENCES = (
    "Le vent du soir passait sur les toits gris.",
    "Nous sommes partis avant le lever du jour.",
    "La rivière était haute après les pluies d'avril.",
    "Mon frère a promis d'écrire chaque semaine.",
    "Le marché ouvre ses portes à six heures.",
    "On entendait les cloches de l'église voisine.",
    "Il faudra réparer le mur du jardin cet été.",
    "Ma tante garde les lettres dans une boîte en fer.",
    "Le train de Lyon avait encore une heure de retard.",
    "Les enfants ont cueilli des mûres près du chemin.",
    "Je vous remercie de votre aimable réponse.",
    "La neige couvrait déjà les champs de blé.",
    "Le notaire a signé l'acte devant trois témoins.",
    "Nous avons dîné tard, à la lueur d'une bougie.",
    "Le facteur est passé deux fois ce matin.",
    "The harbour lights were lit before dusk.",
    "We walked along the river until noon.",
    "My sister sends her kind regards to all of you.",
    "The old mill has stood there for a century.",
    "Please forward the parcel to my new address.",
    "It rained all week, and the roads were mud.",
    "The garden gate creaks whenever the wind blows.",
    "He wrote the accounts in a small brown ledger.",
    "Our ship reached the coast on the third of May.",
    "The children were reading by the kitchen fire.",
    "I shall return as soon as the harvest is done.",
    "A letter from London arrived this morning.",
    "The bells rang twice, and then all was quiet.",
    "She kept the keys in the drawer of her desk.",
    "We hope the weather will be fine on Sunday.",
)

_REFERENCE_SIZE = 100  # font size at which glyphs are measured before scaling to the page
_NOT_A_GLYPH = "\ue000"  # a private-use code point: fonts without it draw their "missing glyph" box
_INKS = ((24, 28, 64), (22, 22, 26), (32, 48, 104), (52, 36, 30))  # blue-black, black, blue, brown
_INK_OPACITY = 235  # of 255: the paper's grain shows faintly through the strokes


@dataclass(frozen=True)
class RenderedLine:
    """One drawn line: its text and, in image pixels, its baseline and enclosing polygon."""

    text: str
    baseline: list[Point]
    polygon: list[Point]


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


def _rotate(points: Sequence[Point], center: Point, degrees: float) -> list[Point]:
    """Points turned ``degrees`` counter-clockwise on screen about ``center`` (as PIL's Image.rotate)."""
    cx, cy = center
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [(cx + (x - cx) * c + (y - cy) * s, cy - (x - cx) * s + (y - cy) * c) for x, y in points]


def _noise(width: int, height: int, cell: int, sigma: float, rng: np.random.Generator,
           resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """Gaussian noise drawn on a grid of ``cell``-pixel cells and resized to ``height`` x ``width``."""
    cols, rows = width // cell + 2, height // cell + 2
    small = Image.fromarray(rng.normal(0, sigma, (rows, cols)).astype(np.float32))
    return np.asarray(small.resize((cols * cell, rows * cell), resample))[:height, :width]


def _paper(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Slightly off-white paper: a warm tint, soft blotches and a fine 2-pixel grain."""
    tint = np.rint(np.array([246, 241, 229], dtype=np.float32) + rng.uniform(-4, 4, size=3))
    # One whole-number texture shared by the channels keeps a page PNG near 1.5 MB (3-4 MB otherwise).
    texture = np.rint(_noise(width, height, 64, 2.5, rng) + _noise(width, height, 16, 1.5, rng)
                      + _noise(width, height, 2, 1.2, rng, Image.Resampling.NEAREST))
    pixels = tint[None, None, :] + texture[:, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def render_page(text_lines: Sequence[str], seed: int, width: int = 1600, height: Optional[int] = None,
                fonts: Optional[Sequence[Path]] = None) -> tuple[Image.Image, list[RenderedLine]]:
    """Draw ``text_lines`` in one handwriting font (chosen by ``seed``) on paper.

    Every line gets a slight rotation about its baseline start and some baseline and indent
    jitter. The returned baselines and polygons (the rotated ink box, padded a few pixels) are
    exact in the returned image's pixel coordinates. The same arguments give the same image.
    """
    rng = np.random.default_rng(seed)
    height = height or round(width * math.sqrt(2))
    text = "".join(text_lines)
    references = {path: ImageFont.truetype(str(path), _REFERENCE_SIZE)
                  for path in fonts or handwriting_fonts()}
    candidates = [path for path, font in references.items() if _draws_all(font, text)]
    if not candidates:
        raise InputError(f"no handwriting font draws every character of: {''.join(sorted(set(text)))!r}")
    font_path = candidates[rng.integers(len(candidates))]

    # Scale the font to a common x-height (capitals vary too much between hands), then shrink
    # it until the widest line fits.
    margin, indent_max, pad = round(width * 0.08), round(width * 0.02), 4
    reference = references[font_path]
    x_height = -reference.getbbox("x", anchor="ls")[1]
    size = _REFERENCE_SIZE * width * 0.015 / x_height
    widest = max((reference.getlength(t) for t in text_lines), default=0.0)
    if widest:
        size = min(size, _REFERENCE_SIZE * (width - 2 * margin - indent_max) / widest)
    font = ImageFont.truetype(str(font_path), max(8, int(size)))

    ascent, descent = font.getmetrics()
    pitch = min((ascent + descent) * rng.uniform(1.3, 1.6), (height - 2 * margin) / max(len(text_lines), 1))
    ink = tuple(int(v) for v in _INKS[rng.integers(len(_INKS))])
    image = _paper(width, height, rng)
    lines: list[RenderedLine] = []
    for index, line_text in enumerate(text_lines):
        x0 = margin + rng.uniform(0, indent_max)
        y0 = margin + ascent + index * pitch + rng.uniform(-0.06, 0.06) * pitch
        angle = rng.uniform(-1.0, 1.0)
        left, top, right, bottom = font.getbbox(line_text, anchor="ls")
        # Draw on a mask around the line, with room for the rotation, then ink the paper through it.
        room = pad + 2 + math.ceil((right - left) * math.sin(math.radians(abs(angle))))
        box = (math.floor(x0 + left - room), math.floor(y0 + top - room),
               math.ceil(x0 + right + room), math.ceil(y0 + bottom + room))
        origin = (x0 - box[0], y0 - box[1])
        mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
        ImageDraw.Draw(mask).text(origin, line_text, font=font, fill=_INK_OPACITY, anchor="ls")
        mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, center=origin)
        image.paste(ink, box, mask)
        start = (x0, y0)
        baseline = _rotate([(x0 + left, y0), (x0 + right, y0)], start, angle)
        polygon = _rotate([(x0 + left - pad, y0 + top - pad), (x0 + right + pad, y0 + top - pad),
                           (x0 + right + pad, y0 + bottom + pad), (x0 + left - pad, y0 + bottom + pad)],
                          start, angle)
        lines.append(RenderedLine(text=line_text, baseline=baseline, polygon=polygon))
    return image, lines


def ground_truth_page(image_path: Path, lines: Sequence[RenderedLine]) -> Page:
    """The page of a saved synthetic image: one region around all lines, each line carrying its text."""
    stem = image_path.stem
    region = Region(id=f"{stem}_r1", polygon=hull(line.polygon for line in lines))
    return Page(
        id=stem, name=stem, image=probe_image(image_path)[0], regions=[region],
        lines=[Line(id=f"{stem}_l{number:02d}", baseline=line.baseline, polygon=line.polygon,
                    region_id=region.id,
                    variants=[TextVariant(text=line.text, origin="import", producer=PRODUCER)])
               for number, line in enumerate(lines, start=1)],
    )


def write_synthetic_pages(out_dir: Path, n_pages: int, seed: int = 0) -> list[Path]:
    """Write ``n_pages`` synthetic pages with their PAGE 2019 ground truth into ``out_dir``.

    The files are ``page_0001.png`` (300 dpi) and ``page_0001.xml``, and so on. Each page
    holds 8-14 sentences drawn from SENTENCES; ``seed`` fixes sentences, fonts and jitter, so
    the same seed writes the same images. Returns the image paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fonts = handwriting_fonts()
    rng = random.Random(seed)
    paths: list[Path] = []
    for number in range(1, n_pages + 1):
        texts = rng.sample(SENTENCES, rng.randint(*LINES_PER_PAGE))
        image, lines = render_page(texts, seed=rng.randrange(2**32), fonts=fonts)
        path = out_dir / f"page_{number:04d}.png"
        image.save(path, dpi=DPI)
        path.with_suffix(".xml").write_bytes(render_export(ground_truth_page(path, lines), "pagexml"))
        paths.append(path)
    return paths
