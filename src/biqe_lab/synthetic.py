"""Synthetic handwriting pages rendered with Debian handwriting fonts, with their PAGE ground truth.

The text comes from the Debian word lists of the target languages (random word sequences with
punctuation, capitals and numbers) and from built-in sentences; the pages carry the
degradations of real scans (slant, rotation, baseline wobble, pen width, uneven ink, paper
texture, blur, JPEG artefacts). Everything is drawn from a seed: the same seed writes the same
files, and the ground-truth baselines and polygons fit the ink as drawn.
"""
from __future__ import annotations

import io
import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .errors import DependencyMissingError, InputError
from .export import render_page as render_export
from .geometry import hull
from .ingest import probe_image
from .model import Document, Line, Page, Point, ProcessingRecord, Producer, Region, TextVariant

FONT_DIR = Path("/usr/share/fonts")
FONT_PACKAGES = ("fonts-dancingscript", "fonts-kristi", "fonts-dkg-handwriting", "fonts-ecolier-court")
# File-name fragments of those packages' fonts (DancingScript-*.otf, Kristi.ttf, dkg*.ttf, Ecolier-court.ttf).
FONT_NAME_FRAGMENTS = ("dancingscript", "kristi", "dkg", "ecolier")
FONT_SUFFIXES = (".ttf", ".otf")

PRODUCER = Producer(engine="biqe_lab-synthetic")
# The PAGE metadata dates of the ground truth: fixed, so that a seed always writes the same bytes.
GROUND_TRUTH_DATE = "2000-01-01T00:00:00+00:00"
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


SENTENCE_LANGUAGES = {"fra": SENTENCES[:15], "eng": SENTENCES[15:]}

# Debian word lists (packages wfrench, wamerican/wbritish, wngerman, witalian, wspanish) under
# DICT_DIR, by language code; the first file found is used. Without one, lines fall back to SENTENCES.
DICT_DIR = Path("/usr/share/dict")
WORD_LISTS = {
    "fra": ("french",),
    "eng": ("american-english", "british-english"),
    "deu": ("ngerman",),
    "ita": ("italian",),
    "spa": ("spanish",),
}
LANGUAGES = ("fra", "eng")
TEXT_SOURCES = ("mixed", "words", "sentences")  # "mixed": mostly word-list lines, some SENTENCES
SENTENCE_SHARE = 0.25  # of the lines of "mixed" text
WORDS_PER_LINE = (4, 10)
MAX_LINE_CHARS = 56  # about what fits a page line at the common x-height

# Frequent short words, so that word-list lines read less like a list of rare dictionary entries.
_FUNCTION_WORDS = {
    "fra": ("le", "la", "les", "de", "des", "du", "un", "une", "et", "à", "au", "aux", "en", "dans", "sur",
            "pour", "par", "avec", "que", "qui", "ne", "pas", "il", "elle", "nous", "vous", "ils", "on",
            "est", "sont", "a", "ont", "mais", "ou", "son", "sa", "ses", "ce", "cette", "plus", "très",
            "tout", "bien", "leur", "mon", "notre"),
    "eng": ("the", "of", "and", "to", "a", "in", "is", "was", "that", "for", "on", "with", "as", "by", "at",
            "his", "her", "it", "we", "they", "from", "not", "but", "or", "be", "had", "have", "this", "my",
            "our", "which", "all", "so", "an", "will", "their", "were"),
}
_FUNCTION_SHARE = 0.35
_ELISIONS = {"fra": ("l'", "d'", "qu'", "n'", "s'", "j'")}  # joined to a following word starting with a vowel
_VOWELS = frozenset("aeiouyhàâéèêëîïôûüAEIOUYHÉ")
_MAX_WORD_CHARS = 14

_REFERENCE_SIZE = 100  # font size at which glyphs are measured before scaling to the page
_NOT_A_GLYPH = "\ue000"  # a private-use code point: fonts without it draw their "missing glyph" box
_INKS = ((24, 28, 64), (22, 22, 26), (32, 48, 104), (52, 36, 30))  # blue-black, black, blue, brown
_INK_OPACITY = 235  # of 255: the paper's grain shows faintly through the strokes
_PAD = 4  # pixels between a line's ink and its polygon
_STEP = 24  # pixels between the points of baselines and polygons along a line


@dataclass(frozen=True)
class Degradations:
    """The largest strength of each scan-like degradation; pages and lines draw their own, seeded.

    Each page or line draws a random strength between none and these (0, or an empty ``jpeg``,
    turns one off). The random draws do not depend on these values, so the same seed with,
    say, ``blur=0`` gives the same geometry as with blur.
    """

    rotation: float = 1.0  # degrees each line turns, either way
    slant: float = 10.0  # degrees of shear: the page's hand, either way, plus a little per line
    wobble: float = 0.25  # baseline curve and word offsets, in x-heights, per line
    stroke: float = 1.0  # pixels the pen is wider (dilation; narrower, eroded, by half that), per page
    ink: float = 1.0  # variation of ink opacity (0: even ink), per page, line and stroke
    paper: float = 1.0  # paper texture (0: a plain tint)
    blur: float = 1.0  # Gaussian blur radius in pixels, per page
    jpeg: tuple[int, ...] = (35, 85)  # quality range of a JPEG round trip, per page; () for none


DEGRADATIONS = Degradations()
CLEAN = Degradations(rotation=0, slant=0, wobble=0, stroke=0, ink=0, paper=0, blur=0, jpeg=())


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


# -- text ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _reference_font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _REFERENCE_SIZE)


@lru_cache(maxsize=None)
def _font_draws(path: str, char: str) -> bool:
    return _draws_all(_reference_font(path), char)


@lru_cache(maxsize=None)
def _word_list(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plain words of a word-list file: (lower-case words, capitalised ones); empty if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return (), ()
    # Letters, maybe hyphenated: no possessives, abbreviations with dots or capitals, entries with spaces.
    words = [w for w in text.split("\n") if 1 < len(w) <= _MAX_WORD_CHARS and w.replace("-", "").isalpha()
             and "--" not in w and w[0] != "-" != w[-1] and w[1:].islower()]
    return tuple(w for w in words if w[0].islower()), tuple(w for w in words if w[0].isupper())


def _word_list_path(language: str, dict_dir: Optional[Path] = None) -> Optional[Path]:
    """The first installed word list of ``language`` (None when there is none)."""
    if language not in WORD_LISTS:
        raise InputError(f"no word list known for language {language!r}; known: {', '.join(WORD_LISTS)}")
    folder = DICT_DIR if dict_dir is None else Path(dict_dir)
    return next((folder / name for name in WORD_LISTS[language] if _word_list(folder / name)[0]), None)


def word_list(language: str, dict_dir: Optional[Path] = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of ``language``'s Debian word list (lower-case, capitalised); empty when none is installed."""
    path = _word_list_path(language, dict_dir)
    return _word_list(path) if path else ((), ())


@lru_cache(maxsize=64)
def _drawable_words(path: Path, font_path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of a word list (as ``_word_list``) that the font at ``font_path`` draws."""
    lists = _word_list(path)
    missing = "".join(sorted(c for c in set("".join(lists[0] + lists[1])) if not _font_draws(font_path, c)))
    if not missing:
        return lists
    unwanted = re.compile("[" + re.escape(missing) + "]")
    return tuple(tuple(w for w in words if not unwanted.search(w)) for words in lists)  # type: ignore[return-value]


def _number(rng: random.Random, language: str) -> str:
    kind = rng.random()
    if kind < 0.4:
        return str(rng.randint(1, 31))
    if kind < 0.7:
        return str(rng.randint(1700, 1960))
    if kind < 0.85:
        return str(rng.randint(2, 999))
    return f"{rng.randint(1, 99)}{',' if language == 'fra' else '.'}{rng.randint(0, 99):02d}"


def _punctuated(mark: str, language: str) -> str:
    """A mark as it follows a word; French sets a space before the two-part marks."""
    return f" {mark}" if language == "fra" and mark in ";:?!" else mark


def _capitalised(word: str) -> str:
    return word[:1].upper() + word[1:]


def compose_line(rng: random.Random, language: str, lower: Sequence[str], capitalised: Sequence[str] = ()) -> str:
    """One line of 4-10 random words of ``language`` with punctuation, capitals and some numbers.

    ``lower`` and ``capitalised`` are the word list's plain and proper-noun-like words (see
    ``word_list``); frequent function words of the language are mixed in. Lines stay within
    about MAX_LINE_CHARS characters.
    """
    function_words = _FUNCTION_WORDS.get(language, ())
    elisions = _ELISIONS.get(language, ())
    wanted = rng.randint(*WORDS_PER_LINE)
    words: list[str] = []
    length = 0
    capitalise_next = True
    while len(words) < wanted:
        roll = rng.random()
        if roll < 0.05:
            word = _number(rng, language)
        elif function_words and roll < 0.05 + _FUNCTION_SHARE:
            word = rng.choice(function_words)
        elif capitalised and rng.random() < 0.06:
            word = rng.choice(capitalised)
        else:
            # The shorter of two words: frequent words are short, dictionary entries long.
            word = min(rng.choice(lower), rng.choice(lower), key=len)
            if elisions and word[0] in _VOWELS and rng.random() < 0.2:
                word = rng.choice(elisions) + word
        if capitalise_next:
            word, capitalise_next = _capitalised(word), False
        mark = ""
        if len(words) < wanted - 1:
            roll = rng.random()
            if roll < 0.09:
                mark = ","
            elif roll < 0.11:
                mark = ";"
            elif roll < 0.12:
                mark = ":"
            elif roll < 0.15:
                mark, capitalise_next = ".", True
            elif roll < 0.165 and words and len(word) > 3 and word.isalpha():
                word = f"({word})"
        else:
            mark = rng.choices((".", ",", "", ";", "?", "!", ":", "..."),
                               weights=(55, 10, 15, 5, 5, 4, 3, 3))[0]
        token = word + _punctuated(mark, language) if mark else word
        if len(words) >= WORDS_PER_LINE[0] and length + 1 + len(token) > MAX_LINE_CHARS:
            words[-1] += _punctuated(".", language) if words[-1][-1].isalnum() else ""
            break
        words.append(token)
        length += len(token) + bool(length)
    return " ".join(words)


def page_texts(rng: random.Random, n_lines: int, font: Path, languages: Sequence[str] = LANGUAGES,
               text_source: str = "mixed", dict_dir: Optional[Path] = None) -> list[str]:
    """``n_lines`` lines for one page in ``font``: composed from word lists and/or from SENTENCES.

    The page has a main language (drawn from ``languages``) and now and then a line in another.
    ``text_source`` is "mixed" (word-list lines and some built-in sentences), "words" or
    "sentences". A language whose word list is not installed gets built-in sentences instead;
    words with a character ``font`` cannot draw are left out.
    """
    if text_source not in TEXT_SOURCES:
        raise InputError(f"unknown text source {text_source!r}; choose one of {', '.join(TEXT_SOURCES)}")
    languages = tuple(languages) or LANGUAGES
    lists = {language: _word_list_path(language, dict_dir) for language in languages}
    main = rng.choice(languages)
    sentences = [s for s in SENTENCES if all(_font_draws(str(font), c) for c in set(s) if not c.isspace())]
    unused = {language: [s for s in SENTENCE_LANGUAGES.get(language, ()) if s in sentences]
              for language in languages}
    texts: list[str] = []
    for _ in range(n_lines):
        language = main if rng.random() < 0.8 else rng.choice(languages)
        lower, capitalised = _drawable_words(lists[language], str(font)) if lists[language] else ((), ())
        use_sentence = rng.random() < SENTENCE_SHARE
        if text_source == "sentences" or not lower or (text_source == "mixed" and use_sentence):
            pool = unused[language] or [s for s in sentences if s not in texts] or sentences
            sentence = rng.choice(pool)
            if sentence in unused[language]:
                unused[language].remove(sentence)
            texts.append(sentence)
            continue
        for _attempt in range(5):
            line = compose_line(rng, language, lower, capitalised)
            if all(_font_draws(str(font), c) for c in set(line) if not c.isspace()):
                break
        else:
            line = rng.choice(sentences)
        texts.append(line)
    return texts


# -- drawing ---------------------------------------------------------------------------------------------
def _noise(width: int, height: int, cell: int, sigma: float, rng: np.random.Generator,
           resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """Gaussian noise drawn on a grid of ``cell``-pixel cells and resized to ``height`` x ``width``."""
    cols, rows = width // cell + 2, height // cell + 2
    small = Image.fromarray(rng.normal(0, sigma, (rows, cols)).astype(np.float32))
    return np.asarray(small.resize((cols * cell, rows * cell), resample))[:height, :width]


def _paper(width: int, height: int, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """Slightly off-white paper: a warm tint, soft blotches and a fine 2-pixel grain."""
    tint = np.rint(np.array([246, 241, 229], dtype=np.float32) + rng.uniform(-4, 4, size=3))
    # One whole-number texture shared by the channels keeps a page PNG small (no per-channel noise).
    texture = np.rint(strength * (_noise(width, height, 64, 2.5, rng) + _noise(width, height, 16, 1.5, rng)
                                  + _noise(width, height, 2, 1.2, rng, Image.Resampling.NEAREST)))
    pixels = tint[None, None, :] + texture[:, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _warp_columns(mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``mask`` with each column moved down by ``shift`` pixels (fractional, linearly interpolated)."""
    rows = np.arange(mask.shape[0], dtype=np.float64)[:, None] - shift[None, :]
    low = np.floor(rows).astype(np.int64)
    frac = (rows - low).astype(np.float32)
    cols = np.broadcast_to(np.arange(mask.shape[1]), low.shape)

    def sample(r: np.ndarray) -> np.ndarray:
        inside = (r >= 0) & (r < mask.shape[0])
        return np.where(inside, mask[np.clip(r, 0, mask.shape[0] - 1), cols], 0.0)

    return (1 - frac) * sample(low) + frac * sample(low + 1)


def _stroke(mask: Image.Image, change: float) -> Image.Image:
    """The pen ``change`` pixels wider (dilated, > 0) or narrower (eroded, < 0), at most one pixel."""
    change = max(-1.0, min(1.0, change))
    if abs(change) < 0.05:
        return mask
    filtered = mask.filter(ImageFilter.MaxFilter(3) if change > 0 else ImageFilter.MinFilter(3))
    return Image.blend(mask, filtered, abs(change))


def _envelope(ink: np.ndarray, lo: float, hi: float, fallback: tuple[float, float]) -> tuple[float, float]:
    """The top and bottom (pixel edges) of the ink in columns [lo, hi) of a boolean mask."""
    cols = ink[:, max(0, math.floor(lo)):max(0, math.ceil(hi))]
    rows = np.flatnonzero(cols.any(axis=1))
    return (float(rows[0]), float(rows[-1] + 1)) if rows.size else fallback


def _affine(points: Sequence[Point], matrix: np.ndarray, origin: Point) -> list[Point]:
    ox, oy = origin
    return [(float(ox + matrix[0, 0] * (x - ox) + matrix[0, 1] * (y - oy)),
             float(oy + matrix[1, 0] * (x - ox) + matrix[1, 1] * (y - oy))) for x, y in points]


def _draw_line(image: Image.Image, text: str, font: ImageFont.FreeTypeFont, start: Point, x_height: float,
               ink: tuple[int, int, int], opacity: float, hand: float, pen: float, rng: np.random.Generator,
               degradations: Degradations) -> RenderedLine:
    """Draw one line of ``text`` with its baseline starting at ``start``; its exact baseline and polygon.

    The words are drawn with small vertical offsets on a mask, whose columns then follow a gentle
    curve; the pen widens or narrows; the mask is sheared (slant) and turned (rotation) about
    ``start`` and inks the paper. The polygon follows the ink measured on the mask before the
    shear and rotation, padded, and goes through the same shear and rotation.
    """
    d = degradations
    x0, y0 = start
    angle = rng.uniform(-1, 1) * d.rotation
    slant = math.radians(float(np.clip(hand + rng.uniform(-0.2, 0.2), -1, 1)) * d.slant)
    opacity *= 1 - d.ink * rng.uniform(0, 0.08)
    amplitude = rng.uniform(0, 1) * d.wobble * x_height
    period, phase = rng.uniform(0.6, 2.5), rng.uniform(0, 2 * math.pi)
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    offsets = rng.uniform(-1, 1, size=len(words)) * d.wobble * 0.35 * x_height

    # Word positions along the unslanted, straight line: starts, ends (advance) and ink boxes.
    spans = []
    for (index, word), offset in zip(words, offsets):
        left = x0 + font.getlength(text[:index])
        spans.append((left, left + font.getlength(word), font.getbbox(word, anchor="ls"), float(offset)))
    ink_left = min(s[0] + s[2][0] for s in spans)
    ink_right = max(s[0] + s[2][2] for s in spans)
    top = min(s[2][1] for s in spans)
    bottom = max(s[2][3] for s in spans)
    length = max(ink_right - ink_left, 1.0)

    def curve(x: np.ndarray) -> np.ndarray:
        return amplitude * np.sin(2 * math.pi * (x - ink_left) / (period * length) + phase)

    def offset_at(x: float) -> float:
        """The word offset at ``x``: the word's own, interpolated across the spaces between words."""
        for (a0, a1, _, oa), (b0, _b1, _, ob) in zip(spans, spans[1:]):
            if x < a1:
                return oa
            if x < b0:
                return oa + (ob - oa) * (x - a1) / max(b0 - a1, 1e-6)
        return spans[-1][3]

    # The mask, with room for the wobble and the pen.
    room = _PAD + 3 + math.ceil(amplitude + d.wobble * 0.35 * x_height)
    box = (math.floor(ink_left - room), math.floor(y0 + top - room),
           math.ceil(ink_right + room), math.ceil(y0 + bottom + room))
    mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    draw = ImageDraw.Draw(mask)
    for (_, word), (left, _, _, offset) in zip(words, spans):
        draw.text((left - box[0], y0 + offset - box[1]), word, font=font, fill=255, anchor="ls")
    columns = box[0] + np.arange(mask.width) + 0.5
    warped = _warp_columns(np.asarray(mask, dtype=np.float32), curve(columns))
    mask = _stroke(Image.fromarray(np.clip(np.rint(warped), 0, 255).astype(np.uint8)), pen)

    # Baseline and polygon in page coordinates, before the shear and rotation.
    inked = np.asarray(mask) > 0
    cols = np.flatnonzero(inked.any(axis=0))
    if cols.size:
        left_edge, right_edge = box[0] + int(cols[0]) - _PAD, box[0] + int(cols[-1]) + 1 + _PAD
    else:  # nothing drawn (a font without ink for these characters): the font's box
        left_edge, right_edge = math.floor(ink_left) - _PAD, math.ceil(ink_right) + _PAD
    breaks = {left_edge, right_edge}
    breaks.update(np.arange(left_edge, right_edge, _STEP).tolist())
    for a0, a1, _, _ in spans:
        breaks.update(x for x in (a0, a1) if left_edge < x < right_edge)
    xs = sorted(breaks)

    def base_y(x: float) -> float:
        return y0 + offset_at(x) + float(curve(np.array(x)))

    segments = [_envelope(inked, a - box[0], b - box[0], (math.inf, -math.inf)) for a, b in zip(xs, xs[1:])]
    upper, lower = [], []
    for i, x in enumerate(xs):
        near = segments[max(0, i - 1):i + 1]
        ink_top = min(s[0] for s in near) + box[1]
        ink_bottom = max(s[1] for s in near) + box[1]
        upper.append((x, min(base_y(x) + top, ink_top) - _PAD))
        lower.append((x, max(base_y(x) + bottom, ink_bottom) + _PAD))
    polygon = upper + lower[::-1]
    # From the first glyph's ink to the last's, kept inside the polygon (font boxes can overshoot the ink).
    start_x, end_x = max(ink_left, left_edge + _PAD / 2), min(ink_right, right_edge - _PAD / 2)
    baseline = [(x, base_y(x)) for x in sorted({start_x, end_x, *(x for x in xs if start_x < x < end_x)})]

    # Shear (slant: the top of the line leans right for a positive angle) and rotation about start.
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    matrix = np.array([[c, s], [-s, c]]) @ np.array([[1.0, -math.tan(slant)], [0.0, 1.0]])
    corners = _affine([(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])], matrix, start)
    out = (math.floor(min(x for x, _ in corners)), math.floor(min(y for _, y in corners)),
           math.ceil(max(x for x, _ in corners)), math.ceil(max(y for _, y in corners)))
    inverse = np.linalg.inv(matrix)
    # Output pixel (u, v) sits at page (out[0] + u, out[1] + v); its source at mask (x - box[0], y - box[1]).
    shift = inverse @ np.array([out[0] - x0, out[1] - y0])
    coefficients = (inverse[0, 0], inverse[0, 1], shift[0] + x0 - box[0],
                    inverse[1, 0], inverse[1, 1], shift[1] + y0 - box[1])
    mask = mask.transform((out[2] - out[0], out[3] - out[1]), Image.Transform.AFFINE, coefficients,
                          resample=Image.Resampling.BICUBIC)

    # Uneven ink: the line's own opacity, blotchy along the strokes.
    field = 1 + d.ink * _noise(mask.width, mask.height, max(4, round(x_height / 2)), 0.1, rng)
    alpha = np.asarray(mask, dtype=np.float32) * opacity * np.clip(field, 0.5, 1.1)
    image.paste(ink, out, Image.fromarray(np.clip(np.rint(alpha), 0, 255).astype(np.uint8)))
    return RenderedLine(text=text, baseline=_affine(baseline, matrix, start), polygon=_affine(polygon, matrix, start))


def render_page(text_lines: Sequence[str], seed: int, width: int = 1600, height: Optional[int] = None,
                fonts: Optional[Sequence[Path]] = None, degradations: Optional[Degradations] = None,
                ) -> tuple[Image.Image, list[RenderedLine]]:
    """Draw ``text_lines`` in one handwriting font (chosen by ``seed``) on paper, as a degraded scan.

    ``degradations`` (default DEGRADATIONS; CLEAN for none) bounds the slant of the hand, each
    line's rotation, baseline wobble and word offsets, the pen width, uneven ink, the paper
    texture, a blur and a JPEG round trip; ``seed`` draws their strengths. The returned baselines
    (a polyline along each line) and polygons (around all of the line's ink, padded a few pixels)
    are exact in the returned image's pixel coordinates. The same arguments give the same image.
    """
    d = DEGRADATIONS if degradations is None else degradations
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
    margin, indent_max = round(width * 0.08), round(width * 0.02)
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
    # The page's draws, whatever the strengths, so that turning one off leaves the others alone.
    # A narrower pen erodes half a pixel at most: hairline hands (Ecolier) would fade away.
    hand, pen = rng.uniform(-1, 1), rng.uniform(-0.5, 1) * d.stroke
    opacity = _INK_OPACITY / 255 * (1 - d.ink * rng.uniform(0, 0.15))
    paper, blur, quality = rng.uniform(0.6, 1.4) * d.paper, rng.uniform(0, 1) * d.blur, rng.uniform()
    image = _paper(width, height, rng, paper)
    lines: list[RenderedLine] = []
    for index, line_text in enumerate(text_lines):
        x0 = margin + rng.uniform(0, indent_max)
        y0 = margin + ascent + index * pitch + rng.uniform(-0.06, 0.06) * pitch
        if not line_text.strip():
            lines.append(RenderedLine(text=line_text, baseline=[(x0, y0), (x0 + 1, y0)],
                                      polygon=[(x0, y0 - _PAD), (x0 + 1, y0 - _PAD), (x0 + 1, y0), (x0, y0)]))
            continue
        lines.append(_draw_line(image, line_text, font, (x0, y0), x_height * font.size / _REFERENCE_SIZE,
                                ink, opacity, hand, pen, rng, d))
    if blur >= 0.1:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if d.jpeg:
        low, high = min(d.jpeg), max(d.jpeg)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=round(low + quality * (high - low)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
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


def write_synthetic_pages(out_dir: Path, n_pages: int, seed: int = 0, languages: Sequence[str] = LANGUAGES,
                          text_source: str = "mixed", degradations: Optional[Degradations] = None,
                          dict_dir: Optional[Path] = None) -> list[Path]:
    """Write ``n_pages`` synthetic pages with their PAGE 2019 ground truth into ``out_dir``.

    The files are ``page_0001.png`` (300 dpi) and ``page_0001.xml``, and so on. Each page holds
    8-14 lines in one handwriting font: random word sequences from the Debian word lists of
    ``languages`` (one main language a page, now and then a line in another) and some of the
    built-in SENTENCES, as ``text_source`` says (see ``page_texts``); without the word lists,
    only SENTENCES. ``degradations`` bounds the scan-like degradations (see ``render_page``).
    ``seed`` fixes text, fonts and degradations, so the same seed writes the same files.
    Returns the image paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fonts = handwriting_fonts()
    rng = random.Random(seed)
    paths: list[Path] = []
    for number in range(1, n_pages + 1):
        page_rng = random.Random(rng.randrange(2**32))
        font = fonts[page_rng.randrange(len(fonts))]
        texts = page_texts(page_rng, page_rng.randint(*LINES_PER_PAGE), font, languages, text_source, dict_dir)
        render_seed = page_rng.randrange(2**32)
        image, lines = render_page(texts, seed=render_seed, fonts=[font], degradations=degradations)
        path = out_dir / f"page_{number:04d}.png"
        image.save(path, dpi=DPI)
        record = ProcessingRecord(step="synthetic", engine=PRODUCER.engine, started_at=GROUND_TRUTH_DATE,
                                  settings={"seed": seed, "page": number, "render_seed": render_seed,
                                            "font": font.name, "text_source": text_source,
                                            "languages": ",".join(languages)})
        document = Document(name="synthetic", created_at=GROUND_TRUTH_DATE, processing=[record])
        path.with_suffix(".xml").write_bytes(render_export(ground_truth_page(path, lines), "pagexml", document))
        paths.append(path)
    return paths
