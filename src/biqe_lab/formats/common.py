"""What the XML readers and writers share: the parsed-layout record, a safe parser, schema validation."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

from lxml import etree

from ..errors import ExportError
from ..geometry import hull
from ..model import Line, Page, Region

SOFTWARE = "biqe_lab"


@dataclass
class ParsedLayout:
    """What a PAGE/ALTO file says about one page, before it is tied to an image."""

    format: str
    version: str
    image_filename: Optional[str]
    width: Optional[float]
    height: Optional[float]
    regions: list[Region] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)


def xml_parser() -> etree.XMLParser:
    """A parser that never fetches anything and refuses entity expansion (XXE, billion laughs)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)


def regions_in_order(page: Page) -> list[tuple[Region, list[Line]]]:
    """Regions in reading order with their lines; lines outside any region get one enclosing region.

    Both formats nest lines in regions, so orphan lines (kraken can produce them) are grouped
    in a synthetic region placed where their first line falls in the reading order.
    """
    by_region: dict[Optional[str], list[Line]] = {}
    for line in page.lines:
        by_region.setdefault(line.region_id, []).append(line)
    out: list[tuple[Region, list[Line]]] = [(r, by_region.get(r.id, [])) for r in page.regions]
    orphans = by_region.get(None, [])
    if orphans:
        synthetic = Region(id=f"{page.id}_orphans", type="text", polygon=hull(l.polygon for l in orphans))
        first = page.lines.index(orphans[0])
        pos = next(
            (i for i, (r, lines) in enumerate(out) if lines and page.lines.index(lines[0]) > first),
            len(out),
        )
        out.insert(pos, (synthetic, orphans))
    return out


def sub_element(parent: etree._Element, ns: str, tag: str, **attrs) -> etree._Element:
    """Append ``<ns:tag>`` to ``parent`` with the attributes that are not None."""
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    for k, v in attrs.items():
        if v is not None:
            el.set(k, str(v))
    return el


def processing_settings(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@lru_cache(maxsize=4)
def _schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path))


def validate(xml: bytes, schema_path: str | Path) -> None:
    """Raise ExportError with the schema's own messages when ``xml`` is not valid."""
    schema = _schema(str(schema_path))
    doc = etree.fromstring(xml, xml_parser())
    if not schema.validate(doc):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:5])
        raise ExportError(f"export is not valid against {Path(schema_path).name}: {errors}")

