"""Searchable PDF/A export on a real page: text order, text boxes on the lines, PDF/A metadata, fonts, variants."""
import os
import subprocess
from pathlib import Path

import pikepdf
import pytest
from lxml import etree
from shapely.geometry import box

from biqe_lab import Document, Page, Producer, TextVariant
from biqe_lab.errors import ExportError, InputError
from biqe_lab.geometry import shapely_polygon
from biqe_lab.pdf import PDF_FORMATS, export_pdf

SPECIAL = "ꝑ⋎ é"  # a MUFI abbreviation, a sign outside Latin-1 and an accent


def recognized(document: Document, lines: int | None = None) -> Document:
    """A copy whose lines read their reference text (as an HTR variant); line 2 also gets SPECIAL."""
    doc = document.model_copy(deep=True)
    for page in doc.pages:
        page.lines = page.lines[:lines]
        for i, line in enumerate(page.lines):
            text = (line.reference or "") + (f" {SPECIAL}" if i == 1 else "")
            line.add_variant(TextVariant(origin="htr", producer=Producer(engine="test"), text=text))
    return doc


def pdftotext(pdf: Path, *args: str, page: int = 1) -> str:
    return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), *args, str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout


def pdfa_status(pdf: Path) -> str:
    with pikepdf.open(pdf) as p:
        return p.open_metadata().pdfa_status  # e.g. "2B", from the XMP pdfaid part and conformance


def assert_text_on_lines(pdf: Path, page: Page, pdf_page: int = 1) -> None:
    """pdftotext's word boxes (content order) matched to the page's lines, in PDF points."""
    dpi_x, dpi_y = page.image.dpi or (300.0, 300.0)
    html = pdftotext(pdf, "-raw", "-bbox", page=pdf_page)
    words = [(w.text, box(*(float(w.get(k)) for k in ("xMin", "yMin", "xMax", "yMax"))))
             for w in etree.fromstring(html.encode()).iter("{*}word")]
    for line in page.lines:
        expected = line.text.split()
        line_words, words = words[:len(expected)], words[len(expected):]
        assert [w for w, _ in line_words] == expected
        polygon = shapely_polygon([(x * 72 / dpi_x, y * 72 / dpi_y) for x, y in line.polygon])
        corners = [b.bounds for _, b in line_words]
        text_box = box(min(c[0] for c in corners), min(c[1] for c in corners),
                       max(c[2] for c in corners), max(c[3] for c in corners))
        # scaled to the line's width: the text starts and ends where the polygon does
        assert text_box.bounds[0] == pytest.approx(polygon.bounds[0], abs=1.0), line.text
        assert text_box.bounds[2] == pytest.approx(polygon.bounds[2], abs=1.0), line.text
        # and lies on it: most of the box on the polygon, every word's centre inside it
        assert text_box.intersection(polygon).area / text_box.area > 0.6, line.text
        assert all(polygon.contains(b.centroid) for _, b in line_words), line.text
    assert not words


@pytest.fixture(scope="module")
def document(sample_document) -> Document:
    return recognized(sample_document)


@pytest.fixture(scope="module")
def pdfa_2b(document, tmp_path_factory) -> Path:
    """The whole sample page as PDF/A-2b (the default format), made once for the module."""
    return export_pdf(document, tmp_path_factory.mktemp("pdf") / "doc.pdf")


@pytest.mark.slow
def test_pdftotext_reads_every_line_in_reading_order(pdfa_2b, document):
    pdf = pdfa_2b
    expected = [line.text for line in document.pages[0].lines]
    assert pdftotext(pdf, "-raw").split("\n")[:len(expected)] == expected  # the PDF's text order
    layout_text = " ".join(pdftotext(pdf).split())  # what a reader copies, laid out by poppler
    assert all(line in layout_text for line in expected)


@pytest.mark.slow
def test_text_boxes_lie_on_the_line_polygons(pdfa_2b, document):
    pdf = pdfa_2b
    page = document.pages[0]
    with pikepdf.open(pdf) as p:  # page size from the image at the default 300 dpi
        assert [float(v) for v in p.pages[0].mediabox] == pytest.approx(
            [0, 0, page.image.width * 72 / 300, page.image.height * 72 / 300])
    assert_text_on_lines(pdf, page)


@pytest.mark.slow
def test_pdfa_2b_declared_in_xmp_with_all_fonts_embedded(pdfa_2b):
    pdf = pdfa_2b
    assert pdfa_status(pdf) == "2B"
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    rows = [row.split() for row in fonts.splitlines()[2:]]
    assert rows and all(row[-5] == "yes" for row in rows), fonts  # the "emb" column


@pytest.mark.slow
def test_special_characters_survive_into_the_text_layer(pdfa_2b, document):
    special_line = document.pages[0].lines[1].text
    assert special_line.endswith(SPECIAL) and special_line in pdftotext(pdfa_2b, "-raw").splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("pdf_format, status", [("pdfa-1b", "1B"), ("pdfa-3b", "3B")])
def test_pdfa_1b_and_3b(pdf_format, status, sample_document, tmp_path):
    pdf = export_pdf(recognized(sample_document, lines=3), tmp_path / "doc.pdf", pdf_format)
    assert pdfa_status(pdf) == status
    assert SPECIAL in pdftotext(pdf, "-raw")


@pytest.mark.slow
def test_plain_pdf_pages_in_order_sized_by_dpi_failed_pages_skipped_no_tesseract(
        sample_document, tmp_path, monkeypatch):
    """Two pages (the second declares 150x200 dpi) and a failed one, with a `tesseract` that must not run."""
    doc = recognized(sample_document, lines=3)
    first = doc.pages[0]
    second = first.model_copy(deep=True, update={"name": "second", "lines": first.lines[1:],
                                                 "image": first.image.model_copy(update={"dpi": (150.0, 200.0)})})
    failed = first.model_copy(deep=True, update={"name": "failed", "error": "engine failure"})
    doc.pages = [first, failed, second]
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "tesseract-ran"
    (fake_bin / "tesseract").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (fake_bin / "tesseract").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    pdf = export_pdf(doc, tmp_path / "doc.pdf", "pdf")
    assert not marker.exists()
    assert pdfa_status(pdf) == ""
    with pikepdf.open(pdf) as p:
        assert len(p.pages) == 2
        assert [float(v) for v in p.pages[1].mediabox] == pytest.approx(
            [0, 0, first.image.width * 72 / 150, first.image.height * 72 / 200])
    assert pdftotext(pdf, "-raw", page=1).startswith(first.lines[0].text)
    assert pdftotext(pdf, "-raw", page=2).startswith(second.lines[0].text)
    assert_text_on_lines(pdf, second, pdf_page=2)


def test_unknown_format_none_and_an_unrenderable_page(sample_document, tmp_path):
    doc = recognized(sample_document, lines=3)
    assert PDF_FORMATS == ("pdfa-2b", "pdfa-1b", "pdfa-3b", "pdf", "none")
    with pytest.raises(InputError):
        export_pdf(doc, tmp_path / "doc.pdf", "pdfa-4")
    assert export_pdf(doc, tmp_path / "doc.pdf", "none") is None
    assert not (tmp_path / "doc.pdf").exists()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    page = doc.pages[0]
    page.image = page.image.model_copy(update={"path": str(broken)})
    with pytest.raises(ExportError, match=page.name):
        export_pdf(doc, tmp_path / "doc.pdf")
    assert not (tmp_path / "doc.pdf").exists()


def test_cli_offers_the_same_formats():
    from biqe_lab.cli import process

    from biqe_lab.defaults import DEFAULT_PDF_FORMAT

    option = next(p for p in process.params if p.name == "pdf_format")
    # the one default of every front-end (biqe_lab.defaults): PDF/A-2b beside PAGE and ALTO
    assert tuple(option.type.choices) == PDF_FORMATS and option.default == DEFAULT_PDF_FORMAT == "pdfa-2b"
