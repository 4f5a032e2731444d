"""The data model: validation, append-only variants, JSON save/load with a schema version."""
import json

import pytest
from pydantic import ValidationError

from biqe_lab import Document, ImageRef, Line, Page, Producer, Region, TextVariant
from biqe_lab.errors import InputError

HTR = Producer(engine="test")


def _line(**kw):
    return Line(baseline=[(0, 10), (100, 10)], polygon=[(0, 0), (100, 0), (100, 12), (0, 12)], **kw)


def _page(lines, regions=()):
    return Page(name="p", image=ImageRef(path="p.png", width=200, height=100, sha256="0" * 64),
                regions=list(regions), lines=lines)


def test_geometry_is_validated_on_creation():
    with pytest.raises(ValidationError, match="baseline needs at least 2 points"):
        Line(baseline=[(0, 0)], polygon=[(0, 0), (1, 0), (1, 1)])
    with pytest.raises(ValidationError, match="polygon needs at least 3 points"):
        Line(baseline=[(0, 0), (1, 0)], polygon=[(0, 0), (1, 0)])
    with pytest.raises(ValidationError, match="NaN"):
        Region(polygon=[(0, 0), (float("nan"), 0), (1, 1)])


def test_line_must_point_to_a_known_region():
    with pytest.raises(ValidationError, match="unknown region"):
        _page([_line(region_id="nowhere")])


def test_confidences_are_checked():
    with pytest.raises(ValidationError, match="outside"):
        TextVariant(text="a", origin="htr", producer=HTR, confidence=1.5)
    with pytest.raises(ValidationError, match="one value per character"):
        TextVariant(text="ab", origin="htr", producer=HTR, char_confidences=[0.5])


def test_variants_are_appended_and_accepted_supersedes():
    line = _line()
    raw = line.add_variant(TextVariant(text="helo", origin="htr", producer=HTR, confidence=0.4))
    assert line.text == "helo"
    fix = line.add_variant(TextVariant(text="hello", origin="llm", producer=HTR, parent=raw.id))
    assert line.text == "hello" and line.variant("htr").text == "helo"
    human = line.add_variant(TextVariant(text="Hello", origin="human", producer=HTR, status="accepted"))
    again = line.add_variant(TextVariant(text="HELLO", origin="human", producer=HTR, status="accepted"))
    assert [v.status for v in line.variants] == ["proposed", "proposed", "superseded", "accepted"]
    assert line.current().id == again.id and line.text == "HELLO"
    assert fix.parent == raw.id and human.id != again.id
    with pytest.raises(ValidationError):
        raw.text = "changed"  # variants are frozen


def test_save_and_load_round_trip(tmp_path):
    line = _line(reference="hello")
    line.add_variant(TextVariant(text="helo", origin="htr", producer=HTR, confidence=0.5,
                                 char_confidences=[0.1, 0.2, 0.3, 0.4]))
    doc = Document(name="d", pages=[_page([line])])
    path = doc.save(tmp_path / "doc.json")
    back = Document.load(path)
    assert back == doc
    assert json.loads(path.read_text())["schema_version"] == 1


def test_load_refuses_other_schema_versions_and_garbage(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps({"schema_version": 99, "pages": []}))
    with pytest.raises(InputError, match="schema_version 99"):
        Document.load(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="cannot read document"):
        Document.load(p)
