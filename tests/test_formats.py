"""ALTO/PAGE import of every shared file and of older schema versions; exports valid and round-tripping."""
from pathlib import Path

import pytest
from lxml import etree

from biqe_lab import read_layout, render_page
from biqe_lab.formats.common import xml_parser
from biqe_lab.ingest import read_ground_truth
from biqe_lab.model import Producer, TextVariant

from conftest import SAMPLE_PAGE


def _all_xml(datasets: Path) -> list[Path]:
    files = []
    for name in ("peraire", "stanford_memorials", "cremma_medieval_lat"):
        files += sorted((datasets / name).rglob("*.xml"))
    return files


def test_importers_read_every_shared_xml(datasets):
    files = _all_xml(datasets)
    assert len(files) >= 67 + 23 + 24
    total_lines = 0
    for path in files:
        parsed = read_layout(path)
        assert parsed.format == "alto" and parsed.version == "v4"
        for line in parsed.lines:
            assert len(line.baseline) >= 2 and len(line.polygon) >= 3
            assert line.region_id in {r.id for r in parsed.regions}
        total_lines += len(parsed.lines)
    assert total_lines > 2300 + 289 + 1337  # stanford also has typed lines; cremma has .chocomufin copies


def _validate(xml: bytes, xsd: Path):
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    doc = etree.fromstring(xml, xml_parser())
    assert schema.validate(doc), schema.error_log


def _recognized(document):
    """The sample page with every line carrying an htr variant (with per-character confidences)."""
    page = document.pages[0].model_copy(deep=True)
    for i, line in enumerate(page.lines):
        text = (line.reference or "") + (" ⋎ é" if i == 0 else "")
        line.add_variant(TextVariant(text=text, origin="htr", producer=Producer(engine="test"),
                                     confidence=0.75, char_confidences=[0.5 + 0.5 * (k % 2) for k in range(len(text))]))
    return page


@pytest.mark.parametrize("fmt,xsd", [("pagexml", "pagecontent-2019-07-15.xsd"), ("alto", "alto-4-4.xsd")])
def test_export_is_valid_and_round_trips(tmp_path, schemas, sample_document, fmt, xsd):
    page = _recognized(sample_document)
    xml = render_page(page, fmt, sample_document)
    _validate(xml, schemas / xsd)  # the official schema in ../shared, not the packaged copy
    out = tmp_path / "page.xml"
    out.write_bytes(xml)
    regions, lines = read_ground_truth(out, page.image)
    assert [l.id for l in lines] == [l.id for l in page.lines]
    assert [l.reference for l in lines] == [l.text for l in page.lines]
    assert [r.id for r in regions] == [r.id for r in page.regions]
    for got, want in zip(lines, page.lines):
        assert got.baseline == [(round(x), round(y)) for x, y in want.baseline]
        assert got.polygon == [(round(x), round(y)) for x, y in want.polygon]
        assert got.region_id == want.region_id and got.tags == want.tags
    parsed = read_layout(out)
    assert all(l.variant("import").confidence == pytest.approx(0.75, abs=0.26) for l in parsed.lines)


def test_exports_carry_confidences_reading_order_and_provenance(sample_document):
    page = _recognized(sample_document)
    alto = etree.fromstring(render_page(page, "alto", sample_document))
    ns = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
    refs = [e.get("REF") for e in alto.iterfind(".//a:ReadingOrder//a:ElementRef", ns)]
    assert refs == [l.id for l in page.lines]
    strings = alto.findall(".//a:String", ns)
    assert all(s.get("WC") is not None and s.get("CC") for s in strings if s.get("CONTENT"))
    assert alto.find(".//a:Processing/a:processingSoftware/a:softwareName", ns) is not None
    pagexml = etree.fromstring(render_page(page, "pagexml", sample_document))
    pns = {"p": "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}
    order = [e.get("regionRef") for e in pagexml.iterfind(".//p:ReadingOrder//p:RegionRefIndexed", pns)]
    assert order == [r.id for r in page.regions]
    assert {e.get("conf") for e in pagexml.iterfind(".//p:TextLine/p:TextEquiv", pns)} == {"0.7500"}


def _downgrade_alto(xml: str, version: str) -> str:
    return xml.replace("http://www.loc.gov/standards/alto/ns-v4#", f"http://www.loc.gov/standards/alto/ns-{version}#")


def test_alto_v3_and_v2_are_read(tmp_path, sample_dir):
    v4 = (sample_dir / f"{SAMPLE_PAGE}.xml").read_text(encoding="utf-8")
    reference = read_layout(sample_dir / f"{SAMPLE_PAGE}.xml")
    v3 = tmp_path / "v3.xml"
    v3.write_text(_downgrade_alto(v4, "v3"), encoding="utf-8")
    parsed = read_layout(v3)
    assert parsed.version == "v3"
    assert [l.variant("import").text for l in parsed.lines] == [l.variant("import").text for l in reference.lines]
    # ALTO v2: no polygons, BASELINE is one vertical position, words as String + SP.
    v2 = tmp_path / "v2.xml"
    v2.write_text("""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v2#"><Description><MeasurementUnit>pixel</MeasurementUnit>
<sourceImageInformation><fileName>x.png</fileName></sourceImageInformation></Description>
<Layout><Page ID="p1" WIDTH="1000" HEIGHT="800" PHYSICAL_IMG_NR="1"><PrintSpace>
<TextBlock ID="b2" HPOS="10" VPOS="300" WIDTH="900" HEIGHT="40">
  <TextLine ID="l2" HPOS="10" VPOS="300" WIDTH="900" HEIGHT="40" BASELINE="332"><String CONTENT="second"/></TextLine></TextBlock>
<TextBlock ID="b1" HPOS="10" VPOS="100" WIDTH="900" HEIGHT="100">
  <TextLine ID="l1" HPOS="10" VPOS="100" WIDTH="900" HEIGHT="40" BASELINE="130">
    <String CONTENT="Hello" WC="0.9"/><SP/><String CONTENT="world" WC="0.7"/></TextLine></TextBlock>
</PrintSpace></Page></Layout></alto>""", encoding="utf-8")
    parsed = read_layout(v2)
    assert parsed.version == "v2" and parsed.image_filename == "x.png"
    first = parsed.lines[1]
    assert first.variant("import").text == "Hello world"
    assert first.variant("import").confidence == pytest.approx(0.8)
    assert first.baseline == [(10.0, 130.0), (910.0, 130.0)]
    assert first.polygon == [(10, 100), (910, 100), (910, 140), (10, 140)]


def test_alto_explicit_reading_order_is_applied(tmp_path, sample_document):
    page = _recognized(sample_document)
    xml = render_page(page, "alto").decode()
    first, second = page.lines[0].id, page.lines[1].id
    swapped = xml.replace(f'REF="{first}"', 'REF="__tmp__"').replace(f'REF="{second}"', f'REF="{first}"') \
                 .replace('REF="__tmp__"', f'REF="{second}"')
    (tmp_path / "ro.xml").write_text(swapped, encoding="utf-8")
    assert [l.id for l in read_layout(tmp_path / "ro.xml").lines][:2] == [second, first]


def test_page_2013_is_read(tmp_path, sample_document):
    page = _recognized(sample_document)
    xml = render_page(page, "pagexml").decode().replace("2019-07-15", "2013-07-15")
    (tmp_path / "p2013.xml").write_text(xml, encoding="utf-8")
    parsed = read_layout(tmp_path / "p2013.xml")
    assert parsed.format == "page" and parsed.version == "2013-07-15"
    assert [l.variant("import").text for l in parsed.lines] == [l.text for l in page.lines]
    assert parsed.width == page.image.width


def test_page_reading_order_reorders_regions(tmp_path):
    (tmp_path / "p.xml").write_text("""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15">
<Metadata><Creator>x</Creator><Created>2020-01-01T00:00:00</Created><LastChange>2020-01-01T00:00:00</LastChange></Metadata>
<Page imageFilename="x.png" imageWidth="100" imageHeight="100">
<ReadingOrder><OrderedGroup id="g"><RegionRefIndexed index="1" regionRef="r1"/><RegionRefIndexed index="0" regionRef="r2"/></OrderedGroup></ReadingOrder>
<TextRegion id="r1"><Coords points="0,0 50,0 50,20 0,20"/><TextLine id="a"><Coords points="0,0 50,0 50,20 0,20"/>
  <Baseline points="0,15 50,15"/><TextEquiv index="1"><Unicode>alt</Unicode></TextEquiv><TextEquiv index="0" conf="0.5"><Unicode>one</Unicode></TextEquiv></TextLine></TextRegion>
<TextRegion id="r2"><Coords points="0,50 50,50 50,70 0,70"/><TextLine id="b"><Coords points="0,50 50,50 50,70 0,70"/>
  <TextEquiv><Unicode>two</Unicode></TextEquiv></TextLine></TextRegion>
</Page></PcGts>""", encoding="utf-8")
    parsed = read_layout(tmp_path / "p.xml")
    assert [r.id for r in parsed.regions] == ["r2", "r1"]
    assert [(l.id, l.variant("import").text) for l in parsed.lines] == [("b", "two"), ("a", "one")]
    assert parsed.lines[0].baseline == [(0, 70), (50, 70)]  # no Baseline: bottom of the box


def test_broken_xml_is_a_ground_truth_error(tmp_path):
    from biqe_lab.errors import GroundTruthError

    (tmp_path / "bad.xml").write_text("<alto><unclosed>", encoding="utf-8")
    with pytest.raises(GroundTruthError, match="bad.xml"):
        read_layout(tmp_path / "bad.xml")
    (tmp_path / "other.xml").write_text("<html/>", encoding="utf-8")
    with pytest.raises(GroundTruthError, match="unknown XML format"):
        read_layout(tmp_path / "other.xml")


def test_packaged_schemas_are_the_official_ones(schemas):
    from biqe_lab.export import schema_path

    for name in ("alto-4-4.xsd", "pagecontent-2019-07-15.xsd", "xlink.xsd"):
        assert schema_path(name).read_bytes() == (schemas / name).read_bytes()
