"""The `biqe-lab` command line: a thin front-end over the library, and the CLI's error translator."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import click

from .errors import BiqeError, InputError
from .progress import ConsoleProgress
from .safezip import ZipLimits
from .version import __version__


def translate_errors(func):
    """The CLI's one error boundary: BiqeError -> message on stderr and the class's exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BiqeError as exc:
            click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def _languages(value: str) -> tuple[str, ...]:
    return tuple(l for l in value.replace(",", "+").split("+") if l)


_engine_options = [
    click.option("--engine", type=click.Choice(["kraken", "tesseract", "trocr"]), default=None,
                 help="Line recognizer: kraken (a model file), tesseract, or trocr (a transformers "
                      "TrOCR folder or model-hub id). Default: kraken when --model is given, else tesseract."),
    click.option("--model", default=None,
                 help="Recognition model: a kraken .mlmodel/.safetensors file, or for trocr a folder "
                      "saved with save_pretrained (or a hub id where a hub is reachable)."),
    click.option("--lang", "lang", default="eng", show_default=True,
                 help="tesseract language(s), joined by '+', e.g. fra+lat."),
    click.option("--device", default="cpu", show_default=True, help="torch device for kraken (cpu, cuda:0)."),
]


def engine_options(func):
    for option in reversed(_engine_options):
        func = option(func)
    return func


def _config(layout: str, engine: Optional[str], model: Optional[str], lang: str, device: str, **extra):
    from .pipeline import PipelineConfig

    engine = engine or ("kraken" if model else "tesseract")
    return PipelineConfig(layout=layout, engine=engine, model=model, languages=_languages(lang),
                          device=device, **extra)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="biqe-lab")
def main() -> None:
    """biqe_lab: handwritten text recognition from page images to PageXML and ALTO.

    \b
    Typical use:
      biqe-lab process pages.zip --out out/        # layout + recognition + exports
      biqe-lab evaluate gt_dir/ --layout ground-truth --json scores.json
    Exit codes: 0 ok, 2 bad input, 3 unsafe ZIP, 4 no images, 5 undecodable image,
    6 bad ground truth, 7 model error, 8 engine failure, 9 missing program, 10 export error.
    """


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: page/*.xml (PAGE 2019), alto/*.xml (ALTO 4.4), document.json.")
@click.option("--layout", type=click.Choice(["kraken", "ground-truth"]), default="kraken", show_default=True,
              help="kraken: detect regions and baselines; ground-truth: use the .xml beside each image.")
@click.option("--layout-model", type=click.Path(dir_okay=False), default=None,
              help="kraken segmentation model (default: the one shipped with kraken).")
@engine_options
@click.option("--format", "formats", multiple=True, type=click.Choice(["pagexml", "alto"]),
              default=("pagexml", "alto"), show_default=True, help="Export formats (repeatable).")
@click.option("--pdf", "pdf_format", type=click.Choice(["pdfa-2b", "pdfa-1b", "pdfa-3b", "pdf", "none"]),
              default="none", show_default=True,
              help="Also write OUT/<input name>.pdf: the page images with the recognized text as an invisible, "
                   "searchable layer on the lines, as PDF/A-2b, -1b, -3b or plain PDF (built with OCRmyPDF; "
                   "pages without a resolution are taken as 300 dpi).")
@click.option("--keep-going", is_flag=True, help="Record a failing page in document.json and go on.")
@click.option("--max-pages", type=int, default=ZipLimits.max_pages, show_default=True,
              help="ZIP limit: page images.")
@click.option("--max-total-mb", type=int, default=ZipLimits.max_total_bytes // 2**20, show_default=True,
              help="ZIP limit: uncompressed size.")
@click.option("--max-ratio", type=float, default=ZipLimits.max_entry_ratio, show_default=True,
              help="ZIP limit: compression ratio per entry.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@translate_errors
def process(input_path, out_dir, layout, layout_model, engine, model, lang, device, formats, pdf_format,
            keep_going, max_pages, max_total_mb, max_ratio, quiet):
    """Run layout, recognition and export on INPUT: a ZIP, a folder or one image (JPEG, PNG, TIFF).

    A same-named .xml (ALTO or PAGE) beside an image is read as its ground truth.
    """
    from .export import export_document
    from .pipeline import run_pipeline

    limits = ZipLimits(max_total_bytes=max_total_mb * 2**20, max_entry_ratio=max_ratio, max_pages=max_pages)
    config = _config(layout, engine, model, lang, device, layout_model=layout_model, limits=limits,
                     on_page_error="record" if keep_going else "raise")
    out = Path(out_dir)
    progress = None if quiet else ConsoleProgress("pages")
    document = run_pipeline(input_path, config, progress=progress, workdir=out / "images")
    written = export_document(document, out, formats, pdf=pdf_format)
    failed = [p for p in document.pages if p.error]
    lines = sum(len(p.lines) for p in document.pages)
    click.echo(f"{len(document.pages)} pages, {lines} lines -> {out}")
    for fmt, paths in written.items():
        if paths:
            click.echo(f"  {fmt}: {paths[0] if fmt in ('document', 'pdf') else paths[0].parent}")
    for page in failed:
        click.echo(f"  page {page.name} failed: {page.error}", err=True)
    if failed:
        sys.exit(11)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--layout", type=click.Choice(["kraken", "ground-truth"]), default="ground-truth", show_default=True,
              help="ground-truth: recognize the reference lines; kraken: evaluate the full chain, "
                   "matching predicted to reference lines by polygon overlap.")
@engine_options
@click.option("--correction", type=click.Choice(["none", "cheap", "balanced", "best"]), default="none",
              show_default=True, help="LLM post-correction tier to evaluate after recognition.")
@click.option("--preset", default=None, help="Correction preset (document type).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the scores as JSON here.")
@click.option("--save-document", type=click.Path(dir_okay=False), default=None,
              help="Also save the recognized document (document.json) here, to inspect line by line.")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N pages.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@translate_errors
def evaluate(directory, layout, engine, model, lang, device, correction, preset, json_out, save_document, limit,
             quiet):
    """CER/WER of recognition against the ground truth in DIRECTORY.

    DIRECTORY holds page images, each with a same-named ALTO or PAGE .xml. Rates are jiwer
    corpus totals (errors over all reference characters) after NFC normalization.
    """
    from . import evaluation
    from .ingest import ingest
    from .pipeline import run_pipeline

    if correction != "none":
        raise InputError(f"correction tier {correction!r} is not available in this version; use --correction none")
    document = ingest(directory)
    document.pages = [p for p in document.pages if p.ground_truth][: limit or None]
    if not document.pages:
        raise InputError(f"no page in {directory} has a same-named ground-truth .xml")
    config = _config(layout, engine, model, lang, device)
    run_pipeline(document, config, progress=None if quiet else ConsoleProgress("evaluating"))
    if save_document:
        document.save(save_document)
    result = evaluation.report(evaluation.evaluate(document, "htr"))
    click.echo(evaluation.format_table(result))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        click.echo(f"scores written to {json_out}")


@main.command()
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--pages", type=int, default=3, show_default=True, help="How many sample pages.")
@click.option("--datasets", type=click.Path(file_okay=False), default=None,
              help="Folder of the shared datasets (default: ../shared/datasets beside the project).")
@translate_errors
def demo(out_dir, pages, datasets):
    """Process a few real sample pages (or synthetic ones when no dataset is found) end to end."""
    from .demo import run_demo

    run_demo(Path(out_dir), pages, Path(datasets) if datasets else None)


if __name__ == "__main__":  # pragma: no cover
    main()
