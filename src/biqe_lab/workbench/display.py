"""Showing tables, figures, notes and provenance in a notebook so headless runs (papermill) keep the same pictures."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Iterable, Optional, Union

import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from ..ingest import open_image
from ..model import Document
from .overlay import crop_line, jpeg_bytes, png_bytes
from .review import diff_html
from .tables import worst_lines as _worst_lines
from .runs import Run

PERCENT_COLUMNS = ("CER", "WER", "CER corrected", "WER corrected", "share of errors", "CER raw")
NO_GROUND_TRUTH_HTML = ("<p class='meta'><b>no ground truth</b>: these pages have no reference text, so nothing is "
                        "scored; the viewer and the review panel work as usual.</p>")


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def img_tag(data: bytes, alt: str = "", style: str = "", mime: str = "image/png") -> str:
    """An <img> with the image embedded (data URI), so HTML reports need no side files."""
    return (f'<img alt="{html.escape(alt)}" style="{style}" '
            f'src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}"/>')


def table_html(df: pd.DataFrame, percent: Iterable[str] = PERCENT_COLUMNS, digits: int = 2) -> str:
    """A DataFrame as an HTML table, rates as percentages, no index."""
    if not len(df):
        return "<p><i>(empty table)</i></p>"
    percent = set(percent)
    formats = {c: (lambda v, d=digits: "–" if pd.isna(v) else f"{v:.{d}%}") for c in df.columns
               if c in percent or str(c).startswith(("CER ", "WER "))}
    for c in df.columns:
        if c not in formats and pd.api.types.is_float_dtype(df[c]):
            formats[c] = lambda v: "–" if pd.isna(v) else f"{v:.2f}"
    return df.to_html(index=False, formatters=formats, escape=True, na_rep="–", classes="biqe-table", border=0,
                      justify="left")


class Static:
    """Rich output with a PNG and/or HTML: shows in JupyterLab, papermill outputs and nbconvert alike."""

    def __init__(self, html_text: str = "", png: Optional[bytes] = None, text: str = "") -> None:
        self.html, self.png, self.text = html_text, png, text

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": self.text or "(figure)"}
        if self.html:
            bundle["text/html"] = self.html
        if self.png is not None:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        return bundle


def show_table(df: pd.DataFrame, title: str = "", percent: Iterable[str] = PERCENT_COLUMNS) -> None:
    """Display ``df`` as a formatted table (rates as percentages, no index) under a small title."""
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    _display(Static(head + table_html(df, percent), text=df.to_string(index=False)))


def show_notes(runs: Union[Run, list[Run]]) -> None:
    """What a reader must know before trusting the scores: no ground truth, lines without reference,
    pages the model was trained on (one line each; nothing when all is plain)."""
    from ..evaluation import training_note

    notes = []
    for run in [runs] if isinstance(runs, Run) else list(runs):
        label = f"{run.dataset} · {run.tier}"
        if run.htr is None:
            notes.append(f"{label}: no ground truth, so nothing is scored (the viewer and the review work as usual)")
            continue
        if run.htr.coverage_note():
            notes.append(f"{label}: {run.htr.coverage_note()}")
        if training_note(run.training):
            notes.append(f"{label}: {training_note(run.training)}")
    if notes:
        show_html("".join(f"<p class='meta' style='color:#8a4b00'><b>Note:</b> {html.escape(n)}</p>" for n in notes))


def show_provenance(run: Run) -> None:
    """The run's provenance (engine, model and sha256, version and commit, preset, steps and times)."""
    from .report import provenance, provenance_html

    show_html("<h4>Provenance</h4>" + provenance_html(provenance(run.document, None if run.settings.get("document")
                                                                   else run.config), run))


def show_figure(fig: Figure, save_to: Union[str, Path, None] = None, dpi: int = 110) -> bytes:
    """Display a matplotlib figure as a PNG (the same bytes in Lab and in batch reports); optionally save it."""
    png = figure_png(fig, dpi)
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        Path(save_to).write_bytes(png)
    _display(Static(png=png, text=fig.axes[0].get_title(loc="left") if fig.axes else "figure"))
    return png


def show_image(image: Image.Image, caption: str = "") -> None:
    """Display a PIL image (e.g. :func:`render_overlay`) as a PNG, with an optional caption."""
    png = png_bytes(image)
    if caption:
        _display(Static(f"<div>{img_tag(png, caption)}<div class='meta'>{html.escape(caption)}</div></div>",
                        text=caption))
    else:
        _display(Static(png=png, text="image"))


def show_html(text: str) -> None:
    _display(Static(text, text=html.unescape(text)))


def worst_lines_html(runs: Union[Run, list[Run]], n: int = 8, origin: str = "htr") -> str:
    """The ``n`` worst lines: line image, reference, recognized text with its character diff, CER."""
    runs_list = [runs] if isinstance(runs, Run) else list(runs)
    if all(r.htr is None for r in runs_list):
        return NO_GROUND_TRUTH_HTML
    worst = _worst_lines(runs_list, n, origin)
    if not len(worst):
        return "<p>No line with at least 5 reference characters.</p>"
    docs = {(r.dataset, r.tier): r.document for r in runs_list}
    images: dict[str, Image.Image] = {}
    rows = []
    for _, row in worst.iterrows():
        document: Document = docs[(row["dataset"], row["tier"])]
        page = next(p for p in document.pages if p.name == row["page"])
        line = next(l for l in page.lines if l.id == row["line_id"])
        if page.name not in images:
            images[page.name] = open_image(page.image)
        crop = crop_line(page, line, images[page.name])  # colour, 64 px, the page's own pixels
        conf = "–" if pd.isna(row["confidence"]) else f"{row['confidence']:.2f}"
        rows.append(
            f"<tr><td>{html.escape(row['page'])}<br>line {row['line']}<br>CER <b>{row['CER']:.0%}</b>"
            f"<br>conf. {conf}</td><td>{img_tag(jpeg_bytes(crop, 90), 'line image', 'max-width:100%;height:auto', 'image/jpeg')}"
            f"<div style='font-family:monospace'><span style='color:#555'>ref:</span> {html.escape(row['reference'])}"
            f"<br><span style='color:#555'>htr:</span> "
            f"{html.escape(row['recognized']) or '<i style=color:#888>(nothing recognized)</i>'}"
            f"<br><span style='color:#555'>diff:</span> {diff_html(row['reference'], row['recognized'])}</div></td></tr>")
    return ("<table class='worst'><thead><tr><th>where</th><th>line image, reference, recognized text "
            "and the edit from one to the other</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def show_worst_lines(runs: Union[Run, list[Run]], n: int = 8, origin: str = "htr") -> None:
    from .review import DIFF_KEY

    show_html(f"<h4>The {n} worst lines</h4>" + DIFF_KEY + worst_lines_html(runs, n, origin))


def review_html(run: Run, limit: Optional[int] = 150, csv: str = "", threshold: float = 0.5) -> str:
    """Every line of the run for review (crop, raw with confidence shading, diff, reference, CER, status).

    Past ``limit`` lines the table says how many more there are and links ``csv`` (the run's review.csv).
    """
    from .review import review_items, review_table_html

    items = review_items(run.document)
    shown = items if limit is None else items[:limit]
    pages = {p.name: p for p in run.document.pages}
    images: dict[str, Image.Image] = {}
    tags = {}
    for it in shown:
        page = pages[it.page]
        if page.name not in images:
            images[page.name] = open_image(page.image)
        line = next(l for l in page.lines if l.id == it.line_id)
        tags[it.line_id] = img_tag(jpeg_bytes(crop_line(page, line, images[page.name]), 90), f"line {it.index}",
                                   "max-width:100%;height:auto", "image/jpeg")
    return review_table_html(items, limit, tags, threshold, more_link=csv)


def show_review(run: Run, limit: Optional[int] = 150, csv: str = "", threshold: float = 0.5) -> None:
    """Display :func:`review_html` under a title that says how many lines there are."""
    from .review import CONFIDENCE_KEY

    total = sum(len(p.lines) for p in run.document.pages)
    shown = total if limit is None else min(total, limit)
    show_html(f"<h4>Review: {shown} of {total} lines</h4>" + CONFIDENCE_KEY + review_html(run, limit, csv, threshold))
