"""Writing a processed Document to disk: PageXML and ALTO per page (schema-validated) and document.json."""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional

from .atomic import write_atomically
from .defaults import EXPORT_FORMATS
from .errors import ExportError, InputError
from .formats import alto, pagexml
from .formats.common import validate
from .model import Document, Page, ProcessingRecord, now_iso
from .version import __version__

FORMATS = {
    "pagexml": (pagexml.render, "pagecontent-2019-07-15.xsd", "page"),
    "alto": (alto.render, "alto-4-4.xsd", "alto"),
}


def schema_path(filename: str) -> Path:
    """The official schema shipped inside the package (copied from ALTO / PRImA, see schemas/)."""
    return Path(str(resources.files("biqe_lab").joinpath("schemas", filename)))


def render_page(page: Page, fmt: str, document: Optional[Document] = None, check: bool = True) -> bytes:
    """One page in ``fmt`` ('pagexml' or 'alto'), validated against the official schema."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    render, xsd, _ = FORMATS[fmt]
    xml = render(page, document)
    if check:
        try:
            validate(xml, schema_path(xsd))
        except ExportError as exc:
            raise ExportError(f"page {page.name}: {exc.message}", page=page.name) from exc
    return xml


def export_document(document: Document, out_dir: str | Path,
                    formats: Iterable[str] = EXPORT_FORMATS, check: bool = True,
                    pdf: str = "none") -> dict[str, list[Path]]:
    """Write ``out_dir/<folder>/<page>.xml`` per format and ``out_dir/document.json``.

    ``pdf`` (one of :data:`biqe_lab.defaults.PDF_FORMATS`; ``"none"``, the default, writes none) adds
    the searchable PDF ``out_dir/<document.name>.pdf``, see :func:`biqe_lab.pdf.export_pdf`.
    Returns the written paths by format (``"document"`` for the JSON, ``"pdf"`` for the PDF).
    """
    out = Path(out_dir)
    formats = list(formats)
    t0 = time.perf_counter()
    started = now_iso()
    rendered: dict[str, list[tuple[Path, bytes]]] = {}
    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
        folder = out / FORMATS[fmt][2]
        rendered[fmt] = [(folder / f"{page.name}.xml", render_page(page, fmt, document, check))
                         for page in document.pages if page.error is None]
    written: dict[str, list[Path]] = {}
    if pdf != "none":  # before the XML files: a page the PDF cannot take (or a bad format) writes nothing
        from .pdf import export_pdf  # here, as it loads OCRmyPDF

        written["pdf"] = [export_pdf(document, out / f"{document.name}.pdf", pdf)]
    for fmt, files in rendered.items():  # nothing is written unless every page rendered
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
        written[fmt] = [p for p, _ in files]
    document.record(ProcessingRecord(step="export", engine="biqe_lab", version=__version__,
                                     settings={"formats": formats, "validated": check, "pdf": pdf},
                                     started_at=started, seconds=round(time.perf_counter() - t0, 3)))
    out.mkdir(parents=True, exist_ok=True)
    written["document"] = [document.save(out / "document.json")]
    return written
