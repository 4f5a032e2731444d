"""Searchable PDF and PDF/A export: the page images with an invisible text layer of our lines, built by OCRmyPDF."""
# The route through OCRmyPDF 17 is its plugin API: this module is also an OCRmyPDF plugin whose OCR
# engine's generate_ocr() returns, for each page, an OcrElement tree made from biqe_lab's lines
# (Tesseract is blocked, not even probed). ocrmypdf.ocr() runs on an image-only PDF of the pages (made
# with img2pdf, JPEG/PNG bytes passed through) in a child Python process per document; OCRmyPDF
# renders our trees with its fpdf2 renderer, grafts them onto the pages and converts the result to
# PDF/A with its default "auto" backend (pikepdf's validated conversion, Ghostscript when that fails).
from __future__ import annotations

import io
import pickle
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar

import img2pdf
import ocrmypdf
import pikepdf
from ocrmypdf import hookimpl
from ocrmypdf.models.ocr_element import Baseline, BoundingBox, OcrClass, OcrElement
from ocrmypdf.pluginspec import OcrEngine, OrientationConfidence
from PIL import Image
from pydantic import BaseModel

from .errors import BiqeError, ExportError, InputError
from .atomic import write_atomically
from .defaults import DEFAULT_PDF_FORMAT, PDF_FORMATS
from .geometry import Point, bbox, scale_points
from .ingest import open_image
from .model import Document, Line, Page
from .version import __version__

DEFAULT_DPI = 300.0  # page size of an image that declares no resolution: 300 dpi, a usual scanning resolution

# Our format names -> OCRmyPDF's --output-type (its PDF/A outputs are the "b" conformance level).
_OUTPUT_TYPES = {"pdfa-2b": "pdfa-2", "pdfa-1b": "pdfa-1", "pdfa-3b": "pdfa-3", "pdf": "pdf"}
ENGINE_NAME = "biqe_lab"  # the value of OCRmyPDF's ocr_engine option that selects our engine
_PLUGIN_MODULE = "biqe_lab.pdf"  # this module, loaded by OCRmyPDF as a plugin by its dotted name
_PASS_THROUGH_SUFFIXES = {".jpg", ".jpeg", ".png"}  # single-image files img2pdf embeds without re-encoding

T = TypeVar("T")


@dataclass(frozen=True)
class PdfJob:
    """What the OCRmyPDF child process needs: file paths, output type, and one text layer per page."""

    image_pdf: str
    output_pdf: str
    output_type: str
    title: str
    text_layers: list[OcrElement]  # one ("ocr_page") per page of image_pdf, in page order


def export_pdf(document: Document, out_path: str | Path, pdf_format: str = DEFAULT_PDF_FORMAT,
               default_dpi: float = DEFAULT_DPI) -> Optional[Path]:
    """Write ``document`` as one searchable PDF at ``out_path``; returns the path (None for ``"none"``).

    ``pdf_format`` is one of :data:`PDF_FORMATS`: ``pdfa-2b`` (default), ``pdfa-1b``, ``pdfa-3b``,
    ``pdf`` (plain) or ``none`` (nothing written). Each page becomes one PDF page, in document
    order, sized from its image resolution (``page.image.dpi``; ``default_dpi``, 300, when the
    image declares none), with each line's standing text (``line.text``) as invisible text on the
    line, in reading order and scaled to the line's width. Pages with ``page.error`` set are
    skipped. Raises InputError for an unknown format and ExportError, naming the page, when a
    page cannot be rendered (or naming the document when OCRmyPDF fails as a whole).
    """
    if pdf_format not in PDF_FORMATS:
        raise InputError(f"unknown PDF format {pdf_format!r}; choose from {', '.join(PDF_FORMATS)}")
    if pdf_format == "none":
        return None
    pages = [p for p in document.pages if p.error is None]
    if not pages:
        raise ExportError(f"document {document.name} has no page to put in a PDF")
    out = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="biqe_pdf_") as tmp:
        work = Path(tmp)
        job = PdfJob(image_pdf=str(work / "images.pdf"), output_pdf=str(work / "out.pdf"),
                     output_type=_OUTPUT_TYPES[pdf_format], title=document.name, text_layers=[])
        _write_image_pdf(pages, default_dpi, Path(job.image_pdf))
        for page in pages:
            job.text_layers.append(_checked(page, lambda: page_text_layer(page, page_dpi(page, default_dpi))))
        job_file = work / "job.pickle"
        job_file.write_bytes(pickle.dumps(job))
        _run_child(job_file, document.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(out, Path(job.output_pdf).read_bytes())
    return out


def page_dpi(page: Page, default_dpi: float = DEFAULT_DPI) -> tuple[float, float]:
    """The page image's (x, y) resolution, or ``default_dpi`` both ways when it declares none."""
    return page.image.dpi or (default_dpi, default_dpi)


def _checked(page: Page, render: Callable[[], T]) -> T:
    """Run one page's rendering step; any failure becomes an ExportError that names the page."""
    try:
        return render()
    except Exception as exc:  # noqa: BLE001 - whatever breaks a page is reported with its name
        message = exc.message if isinstance(exc, BiqeError) else f"{type(exc).__name__}: {exc}"
        raise ExportError(f"page {page.name} cannot be rendered into the PDF: {message}", page=page.name) from exc


# --- the page images -------------------------------------------------------------------------------

def _write_image_pdf(pages: Sequence[Page], default_dpi: float, target: Path) -> None:
    """One image-only PDF page per page, sized by its resolution (the input OCRmyPDF works on)."""
    with pikepdf.Pdf.new() as pdf:
        for page in pages:
            one_page = _checked(page, lambda: _image_page_pdf(page, page_dpi(page, default_dpi)))
            with pikepdf.Pdf.open(io.BytesIO(one_page)) as src:
                pdf.pages.extend(src.pages)
        pdf.save(target)


def _image_page_pdf(page: Page, dpi: tuple[float, float]) -> bytes:
    """The page image as a one-page PDF: JPEG and PNG bytes as they are, other images as lossless PNG.

    The image is decoded first, so an unreadable one fails here with the page's name, and its
    size is checked against the one the lines were drawn on. EXIF orientation is ignored, as
    everywhere in biqe_lab: the lines' pixel coordinates are those of the stored pixels.
    """
    image = open_image(page.image)
    if image.size != (page.image.width, page.image.height):
        raise ExportError(f"the image is {image.width}x{image.height} pixels, the page says "
                          f"{page.image.width}x{page.image.height}")
    layout = img2pdf.get_fixed_dpi_layout_fun(dpi)
    path = Path(page.image.path)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info  # PDF/A-1 allows none
    if page.image.frame == 0 and path.suffix.lower() in _PASS_THROUGH_SUFFIXES and not has_alpha:
        return img2pdf.convert(path.read_bytes(), layout_fun=layout, rotation=img2pdf.Rotation.none)
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")
    png = io.BytesIO()
    image.save(png, format="PNG")
    return img2pdf.convert(png.getvalue(), layout_fun=layout, rotation=img2pdf.Rotation.none)


# --- the text layer: our lines as OCRmyPDF's OcrElement tree --------------------------------------

def page_text_layer(page: Page, dpi: tuple[float, float]) -> OcrElement:
    """The page's lines as an OCRmyPDF ``ocr_page`` tree, in reading order, in image pixels.

    OCRmyPDF's tree has one resolution; for an image with a different vertical resolution the
    y coordinates are rescaled to the horizontal one, so the text page matches the image page.
    """
    dpi_x, dpi_y = dpi
    y_scale = dpi_x / dpi_y
    lines = [element for line in page.lines if (element := _line_element(line, y_scale)) is not None]
    return OcrElement(ocr_class=OcrClass.PAGE, dpi=dpi_x, children=lines,
                      bbox=BoundingBox(0, 0, page.image.width, page.image.height * y_scale))


def _line_element(line: Line, y_scale: float) -> Optional[OcrElement]:
    """One ``ocr_line`` for a line with text: its polygon's box, its baseline, its text as one run.

    biqe_lab records no word geometry, so the line's text is a single word element spanning the
    line: OCRmyPDF's renderer scales it horizontally (Tz) to the line's width, and readers find
    the words at the positions the font's proportions give them along the handwriting.
    """
    text = " ".join(line.text.split())  # no tabs or line breaks inside a line
    if not text:
        return None
    polygon = scale_points(line.polygon, 1.0, y_scale)
    left, top, right, bottom = bbox(polygon)
    box = BoundingBox(left, top, max(right, left + 1), max(bottom, top + 1))  # a flat polygon still places its text
    word = OcrElement(ocr_class=OcrClass.WORD, bbox=box, text=text)
    return OcrElement(ocr_class=OcrClass.LINE, bbox=box, poly=polygon, children=[word],
                      baseline=_hocr_baseline(scale_points(line.baseline, 1.0, y_scale), box))


def _hocr_baseline(points: Sequence[Point], box: BoundingBox) -> Optional[Baseline]:
    """The baseline as hOCR's straight line: slope (image y down) and offset from the box's bottom-left.

    A least-squares fit through the baseline's points; None (the renderer then places the text
    by font metrics) when the baseline is vertical.
    """
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if max(xs) - min(xs) < 1.0:
        return None
    slope, intercept = statistics.linear_regression(xs, ys)
    y_at_left = slope * box.left + intercept
    # Clamped into the box: a baseline outside its polygon would put the text off the line.
    return Baseline(slope=slope, intercept=min(0.0, max(y_at_left - box.bottom, -box.height)))


# --- the OCRmyPDF run, in a child process ----------------------------------------------------------

def _run_child(job_file: Path, document_name: str) -> None:
    """Run OCRmyPDF on the job in a fresh Python process (OCRmyPDF allows one ocr() per process)."""
    result = subprocess.run([sys.executable, "-m", _PLUGIN_MODULE, str(job_file)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise ExportError(f"OCRmyPDF could not build the PDF of {document_name}: {reason}",
                          document=document_name)


def _ocrmypdf_main(job_file: str) -> int:
    """The child process: one ocr() call that puts our text layers on the image PDF."""
    job: PdfJob = pickle.loads(Path(job_file).read_bytes())
    try:
        code = ocrmypdf.ocr(job.image_pdf, job.output_pdf, output_type=job.output_type,
                            ocr_engine=ENGINE_NAME, plugins=[_PLUGIN_MODULE], title=job.title,
                            progress_bar=False, biqe_lab_job=job_file)
    except Exception as exc:  # the parent reads the last line of stderr
        print(f"{type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if code != ocrmypdf.ExitCode.ok:
        print(f"OCRmyPDF ended with {code.name}", file=sys.stderr)
        return 1
    return 0


# --- the OCRmyPDF plugin (hooks found by OCRmyPDF when it loads this module) ------------------------

class JobOptions(BaseModel):
    """Our plugin's OCRmyPDF options (namespace ``biqe_lab``): the job file with the text layers."""

    job: Optional[str] = None


@lru_cache(maxsize=4)
def _load_job(job_file: str) -> PdfJob:
    return pickle.loads(Path(job_file).read_bytes())  # our own file, written by export_pdf


class RecognizedTextEngine(OcrEngine):
    """An OCRmyPDF OCR engine that reads nothing: it returns biqe_lab's lines for each page."""

    @staticmethod
    def version() -> str:
        return __version__

    @staticmethod
    def creator_tag(options) -> str:
        return f"biqe_lab {__version__}"

    def __str__(self) -> str:
        return f"biqe_lab {__version__} (recognized text)"

    @staticmethod
    def languages(options) -> set[str]:
        return set()  # no language check: the text is already recognized

    @staticmethod
    def get_orientation(input_file: Path, options) -> OrientationConfidence:
        return OrientationConfidence(angle=0, confidence=0.0)

    @staticmethod
    def supports_generate_ocr() -> bool:
        return True

    @staticmethod
    def generate_ocr(input_file: Path, options, page_number: int = 0):
        job = _load_job(options.biqe_lab.job)
        tree = job.text_layers[page_number]
        return tree, "\n".join(line.get_text_recursive() for line in tree.lines)

    @staticmethod
    def generate_hocr(input_file: Path, output_hocr: Path, output_text: Path, options) -> None:
        raise NotImplementedError("the biqe_lab engine only provides generate_ocr()")

    @staticmethod
    def generate_pdf(input_file: Path, output_pdf: Path, output_text: Path, options) -> None:
        raise NotImplementedError("the biqe_lab engine only provides generate_ocr()")


@hookimpl
def initialize(plugin_manager) -> None:
    # Not even Tesseract's version probe: its plugin checks for the program on every run.
    plugin_manager.set_blocked("ocrmypdf.builtin_plugins.tesseract_ocr")


@hookimpl
def register_options() -> dict[str, type[BaseModel]]:
    from ocrmypdf.builtin_plugins.tesseract_ocr import TesseractOptions

    # OCRmyPDF's option validation reads options.tesseract.* whatever the engine, so the
    # namespace of the blocked Tesseract plugin stays registered (its defaults, unused).
    return {"biqe_lab": JobOptions, "tesseract": TesseractOptions}


@hookimpl
def get_ocr_engine(options):
    if options is not None and getattr(options, "ocr_engine", None) != ENGINE_NAME:
        return None
    return RecognizedTextEngine()


@hookimpl
def rasterize_pdf_page(output_file: Path, raster_dpi, pageno: int, rotation: Optional[int], options) -> Optional[Path]:
    """A blank raster of the page's size for our engine, which reads no pixels.

    OCRmyPDF rasterizes every page for the OCR engine; with the page images kept as they are
    (its lossless reconstruction) that raster goes nowhere else, and rendering and PNG-encoding
    it took about three quarters of a run. Any other use gets OCRmyPDF's own rasterizer.
    """
    if options is None or options.ocr_engine != ENGINE_NAME or not options.lossless_reconstruction:
        return None
    page = _load_job(options.biqe_lab.job).text_layers[pageno - 1]
    size = (round(page.bbox.width * raster_dpi.x / page.dpi), round(page.bbox.height * raster_dpi.y / page.dpi))
    if rotation in (90, 270):
        size = size[::-1]
    Image.new("1", size, 1).save(output_file, format="PNG", dpi=(raster_dpi.x, raster_dpi.y))
    return output_file


if __name__ == "__main__":
    sys.exit(_ocrmypdf_main(sys.argv[1]))
