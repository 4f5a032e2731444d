"""The data model: validation, append-only variants, JSON save/load with a schema version."""
import json
from pathlib import Path

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
    assert json.loads(path.read_text())["schema_version"] == 2


def test_load_refuses_other_schema_versions_and_garbage(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps({"schema_version": 99, "pages": []}))
    with pytest.raises(InputError, match="schema_version 99"):
        Document.load(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="cannot read document"):
        Document.load(p)


V1 = Path(__file__).parent / "data" / "document_v1.json"  # written by schema-1 biqe_lab (tests/data/README.md)


def test_a_version_1_document_is_upgraded_on_load_and_saved_as_version_2(tmp_path):
    old = json.loads(V1.read_text(encoding="utf-8"))
    doc = Document.load(V1)
    assert doc.schema_version == 2 and [p.name for p in doc.pages] == ["page_0001", "unpaired"]
    good, failed = doc.pages
    # the correction record: JSON inside Line.tags -> a typed field, the same facts
    for old_line, line in zip(old["pages"][0]["lines"], good.lines):
        assert line.correction.model_dump() == json.loads(old_line["tags"]["correction"])
        assert "correction" not in line.tags and line.correction.variant == line.variants[-1].id
    # ground truth: a path -> the lines it holds (here the page's own, a ground-truth layout)
    assert good.ground_truth.source == old["pages"][0]["ground_truth"]
    assert [l.reference for l in good.ground_truth.lines] == [l["reference"] for l in old["pages"][0]["lines"]]
    assert all(not l.variants and l.correction is None for l in good.ground_truth.lines)
    # a page's error: "code: message" -> code and message (the step was not recorded in version 1)
    code, message = old["pages"][1]["error"].split(": ", 1)
    assert (failed.error.code, failed.error.message, failed.error.step) == (code, message, None)
    assert str(failed.error) == old["pages"][1]["error"]
    # warnings: the steps' and the pages' strings -> the records' StepWarnings; the front-ends see the same lines
    correction = next(r for r in doc.processing if r.step == "correction")
    assert "warnings" not in correction.settings
    assert [w.page for w in correction.warnings] == [None, "unpaired"]
    old_warnings = [*next(r for r in old["processing"] if r["step"] == "correction")["settings"]["warnings"],
                    *(f"unpaired: {w}" for w in old["pages"][1]["warnings"])]
    assert doc.warnings() == old_warnings
    back = Document.load(doc.save(tmp_path / "document.json"))
    assert back == doc and json.loads((tmp_path / "document.json").read_text())["schema_version"] == 2
    assert json.loads(V1.read_text(encoding="utf-8")) == old  # the old file is left as it was


def test_a_version_1_page_with_its_own_layout_keeps_its_ground_truth_file_to_read():
    from biqe_lab.model_v1 import upgrade_v1

    old = json.loads(V1.read_text(encoding="utf-8"))
    for line in old["pages"][0]["lines"]:
        line["reference"] = None  # kraken's lines: the reference text was in the file only
    doc = Document.from_data(upgrade_v1(old))
    assert doc.pages[0].ground_truth.source == "images/page_0001.xml" and doc.pages[0].ground_truth.lines is None
    with pytest.raises(InputError, match="schema_version 3"):
        Document.from_json(json.dumps({**old, "schema_version": 3}))
