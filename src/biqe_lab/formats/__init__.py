"""Reading and writing page XML: ALTO v2-v4 and PAGE 2013/2019 import, ALTO 4.4 and PAGE 2019 export."""
from __future__ import annotations

from pathlib import Path

from lxml import etree

from ..errors import GroundTruthError
from .common import ParsedLayout, xml_parser
from . import alto, pagexml

__all__ = ["ParsedLayout", "read_layout", "detect_format", "alto", "pagexml"]


def detect_format(root: etree._Element) -> str:
    """'alto' or 'page' from the root element's namespace (any version)."""
    ns = etree.QName(root).namespace or ""
    if "standards/alto" in ns or etree.QName(root).localname.lower() == "alto":
        return "alto"
    if "primaresearch.org/PAGE" in ns:
        return "page"
    raise GroundTruthError(f"unknown XML format (root <{etree.QName(root).localname}> in namespace {ns!r})")


def read_layout(path: str | Path) -> ParsedLayout:
    """Read regions, lines (with text and reading order) from an ALTO or PAGE file."""
    path = Path(path)
    try:
        root = etree.parse(str(path), xml_parser()).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise GroundTruthError(f"cannot parse {path.name}: {exc}", file=path) from exc
    kind = detect_format(root)
    try:
        return alto.parse(root) if kind == "alto" else pagexml.parse(root)
    except (ValueError, KeyError) as exc:
        raise GroundTruthError(f"{path.name}: {exc}", file=path) from exc
