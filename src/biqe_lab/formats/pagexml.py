"""PAGE XML: read the 2013-07-15 and 2019-07-15 schemas (and others of the family); write PAGE 2019-07-15."""
from __future__ import annotations

import datetime as _dt
from typing import Optional

from lxml import etree

from ..geometry import clip_points, format_points, hull, parse_points
from ..model import Document, Line, Page, Producer, Region, TextVariant
from ..version import __version__
from .common import SOFTWARE, ParsedLayout, processing_settings, regions_in_order, serialize, sub_element

NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{NS} {NS}/pagecontent.xsd"


def _local(el) -> str:
    return etree.QName(el).localname


def _children(el, name: str) -> list:
    return [c for c in el if isinstance(c.tag, str) and _local(c) == name]


def _points(el, child: str) -> Optional[list[tuple[float, float]]]:
    for c in _children(el, child):
        pts = parse_points(c.get("points", ""))
        if pts:
            return pts
        # PAGE 2009/2010 style: <Coords><Point x= y=/></Coords>
        pts = [(float(p.get("x")), float(p.get("y"))) for p in _children(c, "Point")]
        if pts:
            return pts
    return None


def _text(el) -> tuple[str, Optional[float]]:
    """The line's TextEquiv with the lowest index (PAGE's convention for the primary reading)."""
    equivs = _children(el, "TextEquiv")
    if not equivs:
        words = [_text(w)[0] for w in _children(el, "Word")]
        return " ".join(w for w in words if w), None
    equivs.sort(key=lambda e: int(e.get("index", "0") or 0))
    eq = equivs[0]
    unicode = _children(eq, "Unicode")
    text = (unicode[0].text or "") if unicode else ""
    conf = eq.get("conf")
    return text, float(conf) if conf not in (None, "") else None


def _text_regions(container) -> list:
    """TextRegions in document order, nested ones included (PAGE allows regions in regions)."""
    out = []
    for c in container:
        if isinstance(c.tag, str) and _local(c) == "TextRegion":
            out.append(c)
            out.extend(_text_regions(c))
        elif isinstance(c.tag, str) and _local(c).endswith("Region"):
            out.extend(_text_regions(c))
    return out


def _group_order(group) -> list[str]:
    """Region ids of a reading-order group: indexed members by @index, nested groups flattened."""
    members = [c for c in group if isinstance(c.tag, str) and _local(c) not in {"Labels", "UserDefined"}]
    members.sort(key=lambda c: int(c.get("index", "0") or 0))
    out: list[str] = []
    for m in members:
        if m.get("regionRef"):
            out.append(m.get("regionRef"))
        out.extend(_group_order(m))  # nested groups; a RegionRef leaf has no members
    return out


def parse(root: etree._Element) -> ParsedLayout:
    ns = etree.QName(root).namespace or ""
    version = ns.rsplit("/", 1)[-1]
    page_el = next((c for c in root if isinstance(c.tag, str) and _local(c) == "Page"), None)
    if page_el is None:
        raise ValueError("PAGE file has no <Page>")
    width = float(page_el.get("imageWidth")) if page_el.get("imageWidth") else None
    height = float(page_el.get("imageHeight")) if page_el.get("imageHeight") else None
    regions: list[Region] = []
    lines: list[Line] = []
    for reg_el in _text_regions(page_el):
        region_id = reg_el.get("id") or f"region_{len(regions) + 1}"
        reg_lines = []
        for line_el in _children(reg_el, "TextLine"):
            polygon = _points(line_el, "Coords")
            if polygon is None or len(polygon) < 3:
                continue
            baseline = _points(line_el, "Baseline")
            if baseline is None or len(baseline) < 2:
                ys = [p[1] for p in polygon]
                xs = [p[0] for p in polygon]
                baseline = [(min(xs), max(ys)), (max(xs), max(ys))]
            text, conf = _text(line_el)
            custom = line_el.get("custom") or ""
            tags = {}
            if "structure {type:" in custom:
                tags["type"] = custom.split("structure {type:", 1)[1].split(";")[0].split("}")[0]
            line = Line(id=line_el.get("id") or f"line_{len(lines) + len(reg_lines) + 1}",
                        baseline=baseline, polygon=polygon, region_id=region_id, tags=tags)
            line.add_variant(TextVariant(text=text, origin="import", producer=Producer(engine=f"page-{version}"),
                                         confidence=None if conf is None else min(max(conf, 0.0), 1.0)))
            reg_lines.append(line)
        polygon = _points(reg_el, "Coords")
        if polygon is None or len(polygon) < 3:
            if not reg_lines:
                continue
            polygon = hull(l.polygon for l in reg_lines)
        regions.append(Region(id=region_id, type=reg_el.get("type") or "text", polygon=polygon))
        lines.extend(reg_lines)

    order = [rid for ro in _children(page_el, "ReadingOrder") for rid in _group_order(ro)]
    if order:
        rank = {rid: i for i, rid in enumerate(order)}
        pos = {r.id: i for i, r in enumerate(regions)}
        key = lambda rid: (rank.get(rid, len(rank)), pos.get(rid, 0))  # noqa: E731
        regions.sort(key=lambda r: key(r.id))
        line_pos = {l.id: i for i, l in enumerate(lines)}
        lines.sort(key=lambda l: (key(l.region_id), line_pos[l.id]))
    return ParsedLayout("page", version, page_el.get("imageFilename"), width, height, regions, lines)


# ----------------------------------------------------------------------------------- export


def _e(parent, tag: str, **attrs) -> etree._Element:
    return sub_element(parent, NS, tag, **attrs)


def _iso(ts: Optional[str] = None) -> str:
    if ts:
        return ts
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def render(page: Page, document: Optional[Document] = None) -> bytes:
    """One page as a PAGE 2019-07-15 document (bytes, UTF-8)."""
    w, h = page.image.width, page.image.height
    pts = lambda points: format_points(clip_points(points, w, h))  # noqa: E731  PAGE forbids negatives
    root = etree.Element(f"{{{NS}}}PcGts", nsmap={None: NS, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", SCHEMA_LOCATION)
    meta = _e(root, "Metadata")
    _e(meta, "Creator").text = f"{SOFTWARE} {__version__}"
    records = list(document.processing) if document is not None else []
    _e(meta, "Created").text = _iso(document.created_at if document is not None else None)
    _e(meta, "LastChange").text = _iso(records[-1].started_at if records else None)
    for rec in records:
        item = _e(meta, "MetadataItem", type="processingStep", name=rec.step,
                  value=f"{rec.engine} {rec.version or ''}".strip(), date=rec.started_at)
        labels = _e(item, "Labels")
        settings = {**rec.settings, "seconds": round(rec.seconds, 3)}
        _e(labels, "Label", value=processing_settings(settings), type="settings")

    page_el = _e(root, "Page", imageFilename=page.image.path.rsplit("/", 1)[-1], imageWidth=w, imageHeight=h)
    groups = regions_in_order(page)
    if groups:
        ro = _e(page_el, "ReadingOrder")
        og = _e(ro, "OrderedGroup", id=f"ro_{page.id}", caption="Regions reading order")
        for i, (region, _) in enumerate(groups):
            _e(og, "RegionRefIndexed", index=i, regionRef=region.id)
    for region, lines in groups:
        reg_el = _e(page_el, "TextRegion", id=region.id)
        if region.type in _TEXT_TYPES:
            reg_el.set("type", region.type)
        elif region.type != "text":
            reg_el.set("custom", f"structure {{type:{region.type};}}")
        _e(reg_el, "Coords", points=pts(region.polygon))
        for index, line in enumerate(lines):
            line_el = _e(reg_el, "TextLine", id=line.id, index=index)
            if "type" in line.tags:
                line_el.set("custom", f"structure {{type:{line.tags['type']};}}")
            _e(line_el, "Coords", points=pts(line.polygon))
            _e(line_el, "Baseline", points=pts(line.baseline))
            variant = line.current()
            if variant is not None:
                eq = _e(line_el, "TextEquiv")
                if variant.confidence is not None:
                    eq.set("conf", f"{variant.confidence:.4f}")
                _e(eq, "Unicode").text = variant.text
        text = "\n".join(l.text for l in lines)
        if lines:
            _e(_e(reg_el, "TextEquiv"), "Unicode").text = text
    return serialize(root)


_TEXT_TYPES = {
    "paragraph", "heading", "caption", "header", "footer", "page-number", "drop-capital", "credit",
    "floating", "signature-mark", "catch-word", "marginalia", "footnote", "footnote-continued",
    "endnote", "TOC-entry", "list-label", "other",
}
