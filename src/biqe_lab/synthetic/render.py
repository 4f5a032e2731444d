"""Drawing synthetic pages: lines of handwriting on paper, with scan-like degradations and exact outlines."""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..errors import InputError
from ..model import Point
from .fonts import _REFERENCE_SIZE, _draws_all, handwriting_fonts

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


Span = tuple[float, float, tuple[float, float, float, float], float]  # a word: start, end, ink box, offset


@dataclass(frozen=True)
class _LineShape:
    """Where one line's words sit before the slant and rotation: spans along a gently curving baseline."""

    start: Point
    spans: list[Span]  # per word, along the straight line: advance start and end, ink box (anchor "ls"), offset
    amplitude: float  # of the baseline's curve, in pixels
    period: float  # of the curve, in line lengths
    phase: float

    @property
    def ink_left(self) -> float:
        return min(s[0] + s[2][0] for s in self.spans)

    @property
    def ink_right(self) -> float:
        return max(s[0] + s[2][2] for s in self.spans)

    @property
    def top(self) -> float:
        return min(s[2][1] for s in self.spans)

    @property
    def bottom(self) -> float:
        return max(s[2][3] for s in self.spans)

    def curve(self, x: np.ndarray) -> np.ndarray:
        length = max(self.ink_right - self.ink_left, 1.0)
        return self.amplitude * np.sin(2 * math.pi * (x - self.ink_left) / (self.period * length) + self.phase)

    def offset_at(self, x: float) -> float:
        """The word offset at ``x``: the word's own, interpolated across the spaces between words."""
        for (_a0, a1, _, oa), (b0, _b1, _, ob) in zip(self.spans, self.spans[1:]):
            if x < a1:
                return oa
            if x < b0:
                return oa + (ob - oa) * (x - a1) / max(b0 - a1, 1e-6)
        return self.spans[-1][3]

    def base_y(self, x: float) -> float:
        return self.start[1] + self.offset_at(x) + float(self.curve(np.array(x)))


def _line_mask(shape: _LineShape, words: Sequence[tuple[int, str]], font: ImageFont.FreeTypeFont, room: int,
               pen: float) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The line's ink on a mask (words at their offsets, columns following the curve, the pen applied)
    and the mask's box in page coordinates."""
    y0 = shape.start[1]
    box = (math.floor(shape.ink_left - room), math.floor(y0 + shape.top - room),
           math.ceil(shape.ink_right + room), math.ceil(y0 + shape.bottom + room))
    mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    draw = ImageDraw.Draw(mask)
    for (_, word), (left, _, _, offset) in zip(words, shape.spans):
        draw.text((left - box[0], y0 + offset - box[1]), word, font=font, fill=255, anchor="ls")
    columns = box[0] + np.arange(mask.width) + 0.5
    warped = _warp_columns(np.asarray(mask, dtype=np.float32), shape.curve(columns))
    return _stroke(Image.fromarray(np.clip(np.rint(warped), 0, 255).astype(np.uint8)), pen), box


def _outline(shape: _LineShape, mask: Image.Image, box: tuple[int, int, int, int]) -> tuple[list[Point], list[Point]]:
    """Baseline and polygon in page coordinates, before the slant and rotation: the polygon follows the
    ink measured on the mask, padded; the baseline runs from the first glyph's ink to the last's."""
    inked = np.asarray(mask) > 0
    cols = np.flatnonzero(inked.any(axis=0))
    if cols.size:
        left_edge, right_edge = box[0] + int(cols[0]) - _PAD, box[0] + int(cols[-1]) + 1 + _PAD
    else:  # nothing drawn (a font without ink for these characters): the font's box
        left_edge, right_edge = math.floor(shape.ink_left) - _PAD, math.ceil(shape.ink_right) + _PAD
    breaks = {left_edge, right_edge}
    breaks.update(np.arange(left_edge, right_edge, _STEP).tolist())
    for a0, a1, _, _ in shape.spans:
        breaks.update(x for x in (a0, a1) if left_edge < x < right_edge)
    xs = sorted(breaks)
    segments = [_envelope(inked, a - box[0], b - box[0], (math.inf, -math.inf)) for a, b in zip(xs, xs[1:])]
    upper, lower = [], []
    for i, x in enumerate(xs):
        near = segments[max(0, i - 1):i + 1]
        ink_top = min(s[0] for s in near) + box[1]
        ink_bottom = max(s[1] for s in near) + box[1]
        upper.append((x, min(shape.base_y(x) + shape.top, ink_top) - _PAD))
        lower.append((x, max(shape.base_y(x) + shape.bottom, ink_bottom) + _PAD))
    # Kept inside the polygon: font boxes can overshoot the ink.
    start_x, end_x = max(shape.ink_left, left_edge + _PAD / 2), min(shape.ink_right, right_edge - _PAD / 2)
    baseline = [(x, shape.base_y(x)) for x in sorted({start_x, end_x, *(x for x in xs if start_x < x < end_x)})]
    return baseline, upper + lower[::-1]


def _slant_and_turn(mask: Image.Image, box: tuple[int, int, int, int], angle: float, slant: float,
                    start: Point) -> tuple[Image.Image, tuple[int, int, int, int], np.ndarray]:
    """The mask sheared (slant: the top leans right for a positive angle) and turned about ``start``:
    the new mask, its box on the page and the matrix (for the outline)."""
    x0, y0 = start
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
    turned = mask.transform((out[2] - out[0], out[3] - out[1]), Image.Transform.AFFINE, coefficients,
                            resample=Image.Resampling.BICUBIC)
    return turned, out, matrix


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
    angle = rng.uniform(-1, 1) * d.rotation
    slant = math.radians(float(np.clip(hand + rng.uniform(-0.2, 0.2), -1, 1)) * d.slant)
    opacity *= 1 - d.ink * rng.uniform(0, 0.08)
    amplitude = rng.uniform(0, 1) * d.wobble * x_height
    period, phase = rng.uniform(0.6, 2.5), rng.uniform(0, 2 * math.pi)
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    offsets = rng.uniform(-1, 1, size=len(words)) * d.wobble * 0.35 * x_height
    spans = []
    for (index, word), offset in zip(words, offsets):
        left = start[0] + font.getlength(text[:index])
        spans.append((left, left + font.getlength(word), font.getbbox(word, anchor="ls"), float(offset)))
    shape = _LineShape(start, spans, amplitude, period, phase)

    room = _PAD + 3 + math.ceil(amplitude + d.wobble * 0.35 * x_height)  # for the wobble and the pen
    mask, box = _line_mask(shape, words, font, room, pen)
    baseline, polygon = _outline(shape, mask, box)
    mask, out, matrix = _slant_and_turn(mask, box, angle, slant, start)

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
