"""ALTO: read v2, v3 and v4 (any minor version); write ALTO 4.4 with baselines, polygons, confidences, provenance."""
from __future__ import annotations

from typing import Optional

from lxml import etree

from ..geometry import format_points, hull, parse_points, rectangle
from ..version import __version__
from ..model import Document, Line, Page, Producer, Region, TextVariant
from .common import SOFTWARE, ParsedLayout, processing_settings, regions_in_order, serialize, sub_element

NS = "http://www.loc.gov/standards/alto/ns-v4#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XLINK = "http://www.w3.org/1999/xlink"
SCHEMA_LOCATION = f"{NS} http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"

_BLOCKS = {"TextBlock", "ComposedBlock", "Illustration", "GraphicalElement"}


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _children(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and _local(c) == name]


def _descendants(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el.iter() if isinstance(c.tag, str) and _local(c) == name]


def _box(el: etree._Element) -> Optional[list[tuple[float, float]]]:
    try:
        x, y = float(el.get("HPOS")), float(el.get("VPOS"))
        w, h = float(el.get("WIDTH")), float(el.get("HEIGHT"))
    except (TypeError, ValueError):
        return None
    return rectangle(x, y, x + w, y + h)


def _shape(el: etree._Element) -> Optional[list[tuple[float, float]]]:
    for shape in _children(el, "Shape"):
        for poly in _children(shape, "Polygon"):
            pts = parse_points(poly.get("POINTS", ""))
            if len(pts) >= 3:
                return pts
    return _box(el)


def _line_text(line_el: etree._Element) -> tuple[str, Optional[float]]:
    parts: list[str] = []
    confs: list[float] = []
    for child in line_el:
        if not isinstance(child.tag, str):
            continue
        name = _local(child)
        if name == "String":
            parts.append(child.get("CONTENT", ""))
            if child.get("WC") is not None:
                confs.append(float(child.get("WC")))
        elif name == "SP":
            parts.append(" ")
        elif name == "HYP":
            parts.append(child.get("CONTENT", ""))
    text = "".join(parts)
    # Producers that omit <SP/> between Strings still mean separate words.
    strings = _children(line_el, "String")
    if len(strings) > 1 and not _children(line_el, "SP"):
        text = " ".join(s.get("CONTENT", "") for s in strings)
    return text, (sum(confs) / len(confs) if confs else None)


def _baseline(line_el: etree._Element, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
    raw = line_el.get("BASELINE")
    x0 = min(p[0] for p in polygon)
    x1 = max(p[0] for p in polygon)
    if raw and raw.strip():
        try:  # ALTO v2/v3: BASELINE is a single vertical position
            y = float(raw)
            return [(x0, y), (x1, y)]
        except ValueError:
            pts = parse_points(raw)
            if len(pts) >= 2:
                return pts
    y = max(p[1] for p in polygon)  # no baseline: the bottom of the box
    return [(x0, y), (x1, y)]


def parse(root: etree._Element) -> ParsedLayout:
    ns = etree.QName(root).namespace or ""
    version = ns.rsplit("-", 1)[-1].rstrip("#") if "ns-v" in ns else "unknown"
    page_el = next(iter(_descendants(root, "Page")), None)
    if page_el is None:
        raise ValueError("ALTO file has no <Page>")
    filename = None
    for fn in _descendants(root, "fileName"):
        filename = (fn.text or "").strip() or None
    width = float(page_el.get("WIDTH")) if page_el.get("WIDTH") else None
    height = float(page_el.get("HEIGHT")) if page_el.get("HEIGHT") else None
    tags = {t.get("ID"): t.get("LABEL", "") for t in _descendants(root, "OtherTag")}
    tags.update({t.get("ID"): t.get("LABEL", "") for t in _descendants(root, "LayoutTag")})

    regions: list[Region] = []
    lines: list[Line] = []
    seen_ids: set[str] = set()

    def unique(raw: Optional[str], prefix: str) -> str:
        ident = raw or f"{prefix}_{len(seen_ids) + 1}"
        while ident in seen_ids:
            ident += "_"
        seen_ids.add(ident)
        return ident

    for block in _descendants(page_el, "TextBlock"):
        block_lines = _children(block, "TextLine")
        region_id = unique(block.get("ID"), "block")
        block_polygon = _shape(block)
        parsed_lines = []
        for line_el in block_lines:
            polygon = _shape(line_el)
            if polygon is None:
                continue
            text, conf = _line_text(line_el)
            line_tags = {"type": tags[t]} if (t := (line_el.get("TAGREFS") or "").split(" ")[0]) in tags else {}
            line = Line(
                id=unique(line_el.get("ID"), "line"),
                baseline=_baseline(line_el, polygon),
                polygon=polygon,
                region_id=region_id,
                tags=line_tags,
            )
            line.add_variant(
                TextVariant(text=text, origin="import", producer=Producer(engine=f"alto-{version}"),
                            confidence=None if conf is None else min(max(conf, 0.0), 1.0))
            )
            parsed_lines.append(line)
        if block_polygon is None and parsed_lines:
            block_polygon = hull(l.polygon for l in parsed_lines)
        if block_polygon is None:
            continue
        block_tag = (block.get("TAGREFS") or "").split(" ")[0]
        regions.append(Region(id=region_id, type=tags.get(block_tag, "text") or "text", polygon=block_polygon))
        lines.extend(parsed_lines)

    regions, lines = _apply_reading_order(root, regions, lines)
    return ParsedLayout("alto", version, filename, width, height, regions, lines)


def _apply_reading_order(root, regions: list[Region], lines: list[Line]):
    """Reorder by an explicit <ReadingOrder> (refs to blocks or lines); else keep document order."""
    refs: list[str] = []
    for group in _descendants(root, "ReadingOrder"):
        for ref in _descendants(group, "ElementRef"):
            refs.extend((ref.get("REF") or "").split())
    if not refs:
        return regions, lines
    rank = {ident: i for i, ident in enumerate(refs)}
    big = len(rank)
    region_rank = {r.id: rank.get(r.id, big) for r in regions}
    line_rank = {l.id: rank.get(l.id, big) for l in lines}
    # A region's rank is its own or that of its first referenced line.
    for l in lines:
        if l.region_id is not None:
            region_rank[l.region_id] = min(region_rank[l.region_id], line_rank[l.id])
    order = {l.id: i for i, l in enumerate(lines)}
    regions = sorted(regions, key=lambda r: region_rank[r.id])
    lines = sorted(lines, key=lambda l: (region_rank.get(l.region_id, big), line_rank[l.id], order[l.id]))
    return regions, lines


# ----------------------------------------------------------------------------------- export


def _e(parent, tag: str, **attrs) -> etree._Element:
    return sub_element(parent, NS, tag, **attrs)


def _num(v: float) -> str:
    return str(int(round(v)))


def _set_box(el, points) -> None:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    el.set("HPOS", _num(min(xs)))
    el.set("VPOS", _num(min(ys)))
    el.set("WIDTH", _num(max(xs) - min(xs)))
    el.set("HEIGHT", _num(max(ys) - min(ys)))


def _cc(char_confidences: list[float]) -> str:
    """ALTO CC: one digit per character, 0 = sure ... 9 = unsure."""
    return " ".join(str(min(9, max(0, int(round((1.0 - c) * 9))))) for c in char_confidences)


def _write_strings(line_el, line: Line) -> None:
    variant = line.current()
    text = variant.text if variant else ""
    words = text.split(" ")
    char_conf = variant.char_confidences if variant else None
    pos = 0
    for i, word in enumerate(words):
        if i:
            _e(line_el, "SP")
        attrs = {"CONTENT": word}
        if char_conf is not None and word:
            wc = char_conf[pos : pos + len(word)]
            attrs["WC"] = f"{sum(wc) / len(wc):.4f}"
            attrs["CC"] = _cc(wc)
        elif variant is not None and variant.confidence is not None:
            attrs["WC"] = f"{variant.confidence:.4f}"
        _e(line_el, "String", **attrs)
        pos += len(word) + 1


def render(page: Page, document: Optional[Document] = None) -> bytes:
    """One page as an ALTO 4.4 document (bytes, UTF-8)."""
    nsmap = {None: NS, "xsi": XSI, "xlink": XLINK}
    root = etree.Element(f"{{{NS}}}alto", nsmap=nsmap)
    root.set(f"{{{XSI}}}schemaLocation", SCHEMA_LOCATION)
    root.set("SCHEMAVERSION", "4.4")
    desc = _e(root, "Description")
    _e(desc, "MeasurementUnit").text = "pixel"
    src = _e(desc, "sourceImageInformation")
    _e(src, "fileName").text = page.image.path.rsplit("/", 1)[-1]
    records = list(document.processing) if document is not None else []
    for i, rec in enumerate(records, 1):
        proc = _e(desc, "Processing", ID=f"proc_{i}")
        _e(proc, "processingCategory").text = "contentGeneration" if rec.step != "export" else "other"
        _e(proc, "processingDateTime").text = rec.started_at
        _e(proc, "processingStepDescription").text = f"{rec.step} ({rec.engine})"
        _e(proc, "processingStepSettings").text = processing_settings({**rec.settings, "seconds": round(rec.seconds, 3)})
        sw = _e(proc, "processingSoftware")
        _e(sw, "softwareName").text = rec.engine
        if rec.version:
            _e(sw, "softwareVersion").text = rec.version
    if not records:
        proc = _e(desc, "Processing", ID="proc_1")
        sw = _e(proc, "processingSoftware")
        _e(sw, "softwareName").text = SOFTWARE
        _e(sw, "softwareVersion").text = __version__

    groups = regions_in_order(page)
    types = sorted({t for _, ls in groups for l in ls for k, t in l.tags.items() if k == "type"})
    tag_ids = {t: f"LT{i}" for i, t in enumerate(types, 1)}
    if tag_ids:
        tags_el = _e(root, "Tags")
        for label, ident in tag_ids.items():
            _e(tags_el, "OtherTag", ID=ident, LABEL=label, DESCRIPTION=f"line type {label}")
    if page.lines:
        ro = _e(root, "ReadingOrder")
        og = _e(ro, "OrderedGroup", ID=f"ro_{page.id}")
        for region, lines in groups:
            for line in lines:
                _e(og, "ElementRef", ID=f"ro_{line.id}", REF=line.id)

    layout = _e(root, "Layout")
    page_el = _e(layout, "Page", ID=page.id, WIDTH=page.image.width, HEIGHT=page.image.height,
                 PHYSICAL_IMG_NR=page.image.frame + 1)
    confs = [v.confidence for l in page.lines if (v := l.current()) and v.confidence is not None]
    if confs:
        page_el.set("PC", f"{sum(confs) / len(confs):.4f}")
    space = _e(page_el, "PrintSpace", HPOS=0, VPOS=0, WIDTH=page.image.width, HEIGHT=page.image.height)
    for region, lines in groups:
        block = _e(space, "TextBlock", ID=region.id)
        _set_box(block, region.polygon)
        _e(_e(block, "Shape"), "Polygon", POINTS=format_points(region.polygon))
        for line in lines:
            line_el = _e(block, "TextLine", ID=line.id)
            _set_box(line_el, line.polygon)
            line_el.set("BASELINE", format_points(line.baseline))
            if "type" in line.tags:
                line_el.set("TAGREFS", tag_ids[line.tags["type"]])
            _e(_e(line_el, "Shape"), "Polygon", POINTS=format_points(line.polygon))
            _write_strings(line_el, line)
    return serialize(root)
