"""Page pictures for the workbench: layout outlines (regions, polygons, baselines, reading order), zoom and pan, colour line crops."""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

from ..ingest import open_image
from ..model import Line, Page
from ..recognition import line_image

REGION = (31, 119, 180)      # blue
POLYGON = (44, 160, 44)      # green
BASELINE = (214, 39, 40)     # red
ORDER = (40, 40, 40)         # reading-order labels
HIGHLIGHT = (255, 140, 0)    # the selected line (outlined)
MARK = (200, 0, 160)         # search hits (outlined)


@dataclass(frozen=True)
class Layers:
    """Which layout layers an overlay draws, and how strongly (outlines only unless ``fill``)."""

    regions: bool = True
    polygons: bool = True
    baselines: bool = True
    order: bool = True
    opacity: float = 0.7   # of the outlines (0: invisible, 1: opaque)
    fill: bool = False     # a light wash inside line polygons (off: the ink stays as it is)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def view_box(page: Page, zoom: float = 1.0, center: Optional[tuple[float, float]] = None,
             pan: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float, float, float]:
    """The part of the page shown at ``zoom`` (1 = whole page) around ``center`` (default: page centre).

    ``pan`` moves the view by fractions of its own size (-1..1 per axis: left/up to right/down).
    """
    w, h = page.image.width, page.image.height
    zoom = max(1.0, float(zoom))
    vw, vh = w / zoom, h / zoom
    cx, cy = center or (w / 2, h / 2)
    cx, cy = cx + pan[0] * vw, cy + pan[1] * vh
    x0 = min(max(0.0, cx - vw / 2), w - vw)
    y0 = min(max(0.0, cy - vh / 2), h - vh)
    return x0, y0, x0 + vw, y0 + vh


def line_center(line: Line) -> tuple[float, float]:
    x0, y0, x1, y1 = line.bbox
    return (x0 + x1) / 2, (y0 + y1) / 2


def focus_point(page: Page, line: Line, zoom: float) -> tuple[float, float]:
    """Where to centre a zoomed view on ``line``: its middle, or (a long line) so that its start shows."""
    x0, y0, x1, y1 = line.bbox
    vw = page.image.width / max(1.0, float(zoom))
    cx = (x0 + x1) / 2 if x1 - x0 <= vw * 0.9 else x0 - vw * 0.05 + vw / 2
    return cx, (y0 + y1) / 2


def render_overlay(page: Page, image: Optional[Image.Image] = None, layers: Layers = Layers(),
                   highlight: Optional[str] = None, zoom: float = 1.0, width: int = 900,
                   pan: tuple[float, float] = (0.0, 0.0), marks: Sequence[str] = ()) -> Image.Image:
    """The page image with its layout outlined on top, ``width`` pixels wide.

    Regions are blue outlines, line polygons green, baselines red, reading-order numbers in
    small boxes in the margin left of each line (never over its ink); everything is drawn at
    ``layers.opacity`` and nothing is filled unless ``layers.fill``. The ``highlight`` line (an
    id) is outlined thick orange, never filled; ``marks`` (line ids, e.g. search hits) are
    outlined magenta. With ``zoom`` > 1 the view is centred on the highlighted line (its start
    kept in view), else on the page centre, moved by ``pan``.
    """
    image = image if image is not None else open_image(page.image)
    target = next((l for l in page.lines if l.id == highlight), None) if highlight else None
    marked = set(marks)
    x0, y0, x1, y1 = view_box(page, zoom, focus_point(page, target, zoom) if target else None, pan)
    scale = width / (x1 - x0)
    size = (width, max(1, round((y1 - y0) * scale)))
    base = image.convert("RGB").crop((round(x0), round(y0), round(x1), round(y1))).resize(size, Image.LANCZOS)
    canvas = base.convert("RGBA")
    alpha = round(255 * min(1.0, max(0.0, float(layers.opacity))))

    def pts(points):
        return [((x - x0) * scale, (y - y0) * scale) for x, y in points]

    stroke = max(1, round(width / 450))
    if layers.fill and layers.polygons:
        fill = Image.new("RGBA", size, (0, 0, 0, 0))
        shade = ImageDraw.Draw(fill)
        for line in page.lines:
            shade.polygon(pts(line.polygon), fill=POLYGON + (round(alpha * 0.15),))
        canvas = Image.alpha_composite(canvas, fill)
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if layers.regions:
        for region in page.regions:
            p = pts(region.polygon)
            draw.line(p + p[:1], fill=REGION + (alpha,), width=stroke + 1)
    for line in page.lines:
        if layers.polygons and line is not target and line.id not in marked:
            p = pts(line.polygon)
            draw.line(p + p[:1], fill=POLYGON + (alpha,), width=stroke)
        if layers.baselines:
            draw.line(pts(line.baseline), fill=BASELINE + (alpha,), width=stroke)
    canvas = Image.alpha_composite(canvas, layer)
    draw = ImageDraw.Draw(canvas)
    for line in page.lines:  # search hits and the selected line: opaque outlines, drawn last
        if line.id in marked and line is not target:
            p = pts(line.polygon)
            draw.line(p + p[:1], fill=MARK + (255,), width=stroke + 2)
    if target is not None:
        p = pts(target.polygon)
        draw.line(p + p[:1], fill=HIGHLIGHT + (255,), width=stroke + 3)
    if layers.order:
        heights = sorted(l.bbox[3] - l.bbox[1] for l in page.lines) or [30]
        font = _font(int(min(22, max(10, heights[len(heights) // 2] * scale * 0.4))))
        for number, line in enumerate(page.lines, start=1):
            lx0, ly0, _, ly1 = line.bbox
            label = str(number)
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            tw, th = right - left, bottom - top
            tx = max(2, (lx0 - x0) * scale - tw - 8)
            ty = ((ly0 + ly1) / 2 - y0) * scale - th / 2
            box = (tx - 2, ty - 2, tx + tw + 2, ty + th + 2)
            draw.rectangle(box, fill=(HIGHLIGHT if line is target else (255, 255, 255)) + (235,),
                           outline=ORDER + (alpha,))
            draw.text((tx - left, ty - top), label, fill=ORDER + (255,), font=font)
    return canvas.convert("RGB")


def legend_html(layers: Layers = Layers()) -> str:
    """A one-line colour key for an overlay."""
    def swatch(color, label):
        return (f'<span style="display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;'
                f'background:rgb{color};vertical-align:middle"></span>{label}')

    parts = []
    if layers.regions:
        parts.append(swatch(REGION, "regions"))
    if layers.polygons:
        parts.append(swatch(POLYGON, "line polygons"))
    if layers.baselines:
        parts.append(swatch(BASELINE, "baselines"))
    if layers.order:
        parts.append('<span style="margin-left:12px">[n] reading order</span>')
    parts.append(swatch(HIGHLIGHT, "selected line (outline)"))
    return '<div style="font-size:12px">' + "".join(parts) + "</div>"


def crop_line(page: Page, line: Line, image: Optional[Image.Image] = None, height: int = 64,
              masked: bool = False, pad: int = 6) -> Image.Image:
    """The line's own pixels, in colour, scaled to ``height`` (at least 64 px: legible ink).

    Its polygon's bounding box with ``pad`` pixels around, cut from the page image (not the
    grey, masked crop the recognizer saw; ``masked=True`` gives that one).
    """
    image = image if image is not None else open_image(page.image)
    if masked:
        crop = line_image(image, line)
    else:
        x0, y0, x1, y1 = line.bbox
        box = (max(0, x0 - pad), max(0, y0 - pad), min(image.width, x1 + pad + 1), min(image.height, y1 + pad + 1))
        crop = image.convert("RGB").crop(box)
    if crop.height and crop.height != height:
        crop = crop.resize((max(1, round(crop.width * height / crop.height)), height), Image.LANCZOS)
    return crop


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, quality: int = 85) -> bytes:
    """Page pictures as JPEG: a tenth of the PNG's size in reports, the overlay lines still crisp enough."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
