"""Geometry helpers on pixel coordinates: point lists, bounding boxes, polygon overlap, clipping, scaling."""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from shapely.geometry import Polygon as _ShapelyPolygon
from shapely.validation import make_valid

Point = tuple[float, float]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def parse_points(text: str) -> list[Point]:
    """Read "x1,y1 x2,y2 ..." (PAGE, ALTO) or "x1 y1 x2 y2 ..." (older ALTO) into points."""
    numbers = [float(n) for n in _NUMBER.findall(text or "")]
    if len(numbers) % 2:
        raise ValueError(f"odd number of coordinates in {text[:60]!r}")
    return [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)]


def format_points(points: Iterable[Point], sep: str = ",") -> str:
    """Integer pixel points as "x,y x,y" (PAGE's pattern; ALTO recommends the same)."""
    return " ".join(f"{int(round(x))}{sep}{int(round(y))}" for x, y in points)


def bbox(points: Sequence[Point]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def rectangle(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def clip_points(points: Sequence[Point], width: int, height: int) -> list[Point]:
    """Clamp points into the image (0..width-1, 0..height-1)."""
    return [(min(max(x, 0.0), width - 1.0), min(max(y, 0.0), height - 1.0)) for x, y in points]


def scale_points(points: Sequence[Point], sx: float, sy: float) -> list[Point]:
    return [(x * sx, y * sy) for x, y in points]


def shapely_polygon(points: Sequence[Point]):
    """A valid shapely geometry for a (possibly self-intersecting) polygon."""
    poly = _ShapelyPolygon(points)
    return poly if poly.is_valid else make_valid(poly)


def overlap_ratio(a: Sequence[Point], b: Sequence[Point]) -> float:
    """Intersection over union of two polygons (0 when either is degenerate)."""
    pa, pb = shapely_polygon(a), shapely_polygon(b)
    union = pa.union(pb).area
    return float(pa.intersection(pb).area / union) if union > 0 else 0.0


def polygon_area(points: Sequence[Point]) -> float:
    return float(shapely_polygon(points).area)


def hull(point_sets: Iterable[Sequence[Point]]) -> list[Point]:
    """The convex hull of several polygons, e.g. a region enclosing its lines."""
    from shapely.geometry import MultiPoint

    pts = [p for ps in point_sets for p in ps]
    h = MultiPoint(pts).convex_hull
    if h.geom_type == "Polygon":
        return [(float(x), float(y)) for x, y in list(h.exterior.coords)[:-1]]
    x0, y0, x1, y1 = h.bounds
    return rectangle(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))
