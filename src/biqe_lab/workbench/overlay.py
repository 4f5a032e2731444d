"""Page pictures for the workbench: layout overlays (regions, polygons, baselines, reading order), zoom, line crops."""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from PIL import Image, ImageDraw, ImageFont

from ..ingest import open_image
from ..model import Line, Page
from ..recognition import line_image

REGION = (31, 119, 180)      # blue
POLYGON = (44, 160, 44)      # green
BASELINE = (214, 39, 40)     # red
ORDER = (40, 40, 40)         # reading-order labels
HIGHLIGHT = (255, 160, 0)    # the selected line


@dataclass(frozen=True)
class Layers:
    """Which layout layers an overlay draws."""

    regions: bool = True
    polygons: bool = True
    baselines: bool = True
    order: bool = True


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def view_box(page: Page, zoom: float = 1.0, center: Optional[tuple[float, float]] = None
             ) -> tuple[float, float, float, float]:
    """The part of the page shown at ``zoom`` (1 = whole page) around ``center`` (default: page centre)."""
    w, h = page.image.width, page.image.height
    zoom = max(1.0, float(zoom))
    vw, vh = w / zoom, h / zoom
    cx, cy = center or (w / 2, h / 2)
    x0 = min(max(0.0, cx - vw / 2), w - vw)
    y0 = min(max(0.0, cy - vh / 2), h - vh)
    return x0, y0, x0 + vw, y0 + vh


def line_center(line: Line) -> tuple[float, float]:
    x0, y0, x1, y1 = line.bbox
    return (x0 + x1) / 2, (y0 + y1) / 2


def render_overlay(page: Page, image: Optional[Image.Image] = None, layers: Layers = Layers(),
                   highlight: Optional[str] = None, zoom: float = 1.0, width: int = 900) -> Image.Image:
    """The page image with its layout drawn on top, ``width`` pixels wide.

    Regions are blue outlines, line polygons green, baselines red, reading-order numbers in
    boxes at each line's start; the ``highlight`` line (an id) is filled orange. With ``zoom`` > 1
    the view is centred on the highlighted line (else on the page centre).
    """
    image = image if image is not None else open_image(page.image)
    target = next((l for l in page.lines if l.id == highlight), None) if highlight else None
    x0, y0, x1, y1 = view_box(page, zoom, line_center(target) if target else None)
    scale = width / (x1 - x0)
    size = (width, max(1, round((y1 - y0) * scale)))
    base = image.convert("RGB").crop((round(x0), round(y0), round(x1), round(y1))).resize(size, Image.LANCZOS)
    canvas = base.convert("RGBA")
    fill = Image.new("RGBA", size, (0, 0, 0, 0))
    shade, draw = ImageDraw.Draw(fill), ImageDraw.Draw(canvas)

    def pts(points):
        return [((x - x0) * scale, (y - y0) * scale) for x, y in points]

    stroke = max(1, round(width / 450))
    if layers.regions:
        for region in page.regions:
            shade.polygon(pts(region.polygon), fill=REGION + (28,))
    for line in page.lines:
        if line is target:
            shade.polygon(pts(line.polygon), fill=HIGHLIGHT + (110,))
        elif layers.polygons:
            shade.polygon(pts(line.polygon), fill=POLYGON + (40,))
    canvas = Image.alpha_composite(canvas, fill)
    draw = ImageDraw.Draw(canvas)
    if layers.regions:
        for region in page.regions:
            p = pts(region.polygon)
            draw.line(p + p[:1], fill=REGION + (255,), width=stroke + 1)
    for line in page.lines:
        if layers.polygons or line is target:
            p = pts(line.polygon)
            color = HIGHLIGHT if line is target else POLYGON
            draw.line(p + p[:1], fill=color + (255,), width=stroke + (2 if line is target else 0))
        if layers.baselines:
            draw.line(pts(line.baseline), fill=BASELINE + (255,), width=stroke + 1)
    if layers.order:
        heights = sorted(l.bbox[3] - l.bbox[1] for l in page.lines) or [30]
        font = _font(int(min(28, max(11, heights[len(heights) // 2] * scale * 0.55))))
        for number, line in enumerate(page.lines, start=1):
            bx, by = pts(line.baseline[:1])[0]
            label = str(number)
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            tw, th = right - left, bottom - top
            tx, ty = max(0, bx - tw - 6), max(0, by - th - 4)
            box = (tx - 2, ty - 2, tx + tw + 2, ty + th + 2)
            draw.rectangle(box, fill=(HIGHLIGHT if line is target else (255, 255, 255)) + (230,),
                           outline=ORDER + (255,))
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
    parts.append(swatch(HIGHLIGHT, "selected line"))
    return '<div style="font-size:12px">' + "".join(parts) + "</div>"


def crop_line(page: Page, line: Line, image: Optional[Image.Image] = None, height: int = 48) -> Image.Image:
    """The line's pixels (polygon mask, as the recognizer saw them), scaled to ``height``."""
    crop = line_image(image if image is not None else open_image(page.image), line)
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
