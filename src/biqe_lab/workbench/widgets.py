"""ipywidgets 8 page viewer and review panel; each output also carries a static rendering for headless runs."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Optional, Union

import ipywidgets as w
from PIL import Image

from ..export import export_document
from ..ingest import open_image
from ..model import Document, Page
from .display import img_tag
from .overlay import Layers, jpeg_bytes, legend_html, render_overlay
from .review import DIFF_KEY, ReviewItem, decide, diff_html, review_items, review_table_html

_MONO_CSS = "<style>.biqe-lines select{font-family:monospace;font-size:12px}</style>"


def _bundle(widget: w.Widget, static_html: str, text: str) -> dict:
    """A widget's mime bundle plus a static fallback (text/html) that frontends without widgets show."""
    bundle = dict(widget._repr_mimebundle_())
    bundle["text/html"] = static_html
    bundle["text/plain"] = text
    return bundle


def line_label(number: int, text: str, confidence: Optional[float], width: int = 70) -> str:
    conf = f"{confidence:4.2f}" if confidence is not None else "  – "
    text = text if len(text) <= width else text[: width - 1] + "…"
    return f"{number:>3}  {conf}  {text}"


class PageViewer:
    """A page with its layout overlay, the recognized lines beside it; selecting a line highlights it."""

    def __init__(self, document: Document, width: int = 820, origin: str = "current", static_pages: int = 3) -> None:
        if not document.pages:
            from ..errors import InputError
            raise InputError("the document has no page to show")
        self.document, self.width, self.origin, self.static_pages = document, width, origin, static_pages
        self._images: dict[str, Image.Image] = {}
        self.selected: Optional[str] = None
        self.page_select = w.Dropdown(description="page", layout=w.Layout(width="360px"),
                                      options=[(f"{p.name} ({len(p.lines)} lines)", i)
                                               for i, p in enumerate(document.pages)])
        self.toggles = {name: w.ToggleButton(value=True, description=label, layout=w.Layout(width="auto"))
                        for name, label in (("regions", "regions"), ("polygons", "polygons"),
                                            ("baselines", "baselines"), ("order", "order numbers"))}
        self.zoom = w.FloatSlider(value=1.0, min=1.0, max=6.0, step=0.5, description="zoom",
                                  continuous_update=False, readout_format=".1f")
        self.lines = w.Select(options=[], rows=18, layout=w.Layout(width="100%"))
        self.lines.add_class("biqe-lines")
        self.image = w.Image(format="jpeg", layout=w.Layout(width=f"{width}px"))
        self.detail = w.HTML()
        self.legend = w.HTML(legend_html())
        self.page_select.observe(self._on_page, names="value")
        self.lines.observe(self.on_line_selected, names="value")
        self.zoom.observe(lambda _: self.render(), names="value")
        for toggle in self.toggles.values():
            toggle.button_style, toggle.icon = "info", "check"
            toggle.observe(self._on_toggle, names="value")
        controls = w.HBox([self.page_select, *self.toggles.values(), self.zoom], layout=w.Layout(flex_flow="row wrap"))
        side = w.VBox([w.HTML(_MONO_CSS + "<b>lines</b> (number, confidence, text): click one to highlight it"),
                       self.lines, self.detail], layout=w.Layout(width="520px"))
        self.widget = w.VBox([controls, self.legend, w.HBox([self.image, side])])
        self._fill_lines()
        self.render()

    def _on_toggle(self, change) -> None:
        change["owner"].button_style, change["owner"].icon = ("info", "check") if change["new"] else ("", "")
        self.render()

    @property
    def page(self) -> Page:
        return self.document.pages[self.page_select.value]

    def _image(self, page: Page) -> Image.Image:
        if page.name not in self._images:
            self._images[page.name] = open_image(page.image)
        return self._images[page.name]

    def _text(self, line) -> tuple[str, Optional[float]]:
        """The line's text (``origin``) and the recognizer's confidence (corrections carry none)."""
        variant = line.current() if self.origin == "current" else line.variant(self.origin)
        raw = line.variant("htr")
        confidence = variant.confidence if variant and variant.confidence is not None else (
            raw.confidence if raw else None)
        return (variant.text if variant else ""), confidence

    def _fill_lines(self) -> None:
        self.selected = None
        options = [("(no line selected)", None)]
        for number, line in enumerate(self.page.lines, start=1):
            text, conf = self._text(line)
            options.append((line_label(number, text, conf), line.id))
        with self.lines.hold_trait_notifications():
            self.lines.options = options
            self.lines.value = None

    def _on_page(self, _change=None) -> None:
        self._fill_lines()
        self.render()

    def on_line_selected(self, change) -> None:
        """The line table's click handler: highlight the clicked line (and centre the zoom on it)."""
        self.selected = change["new"]
        self.render()

    def select_line(self, line_id: Optional[str]) -> None:
        """Select a line as a click on the table does."""
        self.lines.value = line_id

    def layers(self) -> Layers:
        return Layers(**{name: t.value for name, t in self.toggles.items()})

    def picture(self, page: Optional[Page] = None, highlight: Optional[str] = None, zoom: Optional[float] = None
                ) -> Image.Image:
        page = page or self.page
        return render_overlay(page, self._image(page), self.layers(), highlight or self.selected,
                              self.zoom.value if zoom is None else zoom, width=self.width)

    def render(self) -> None:
        self.image.value = jpeg_bytes(self.picture())
        line = next((l for l in self.page.lines if l.id == self.selected), None)
        if line is None:
            self.detail.value = ""
            return
        text, conf = self._text(line)
        number = self.page.lines.index(line) + 1
        rows = [f"<b>line {number}</b>" + (f", confidence {conf:.2f}" if conf is not None else ""),
                f"<div style='font-family:monospace'>recognized: {html.escape(text)}</div>"]
        if line.reference is not None:
            rows.append(f"<div style='font-family:monospace'>reference: {html.escape(line.reference)}</div>"
                        f"<div style='font-family:monospace'>diff: {diff_html(line.reference, text)}</div>")
        self.detail.value = "".join(rows)

    def line_table_html(self, page: Page) -> str:
        rows = []
        for number, line in enumerate(page.lines, start=1):
            text, conf = self._text(line)
            ref = f"<br><span style='color:#777'>{html.escape(line.reference)}</span>" if line.reference else ""
            rows.append(f"<tr><td>{number}</td><td>{'' if conf is None else f'{conf:.2f}'}</td>"
                        f"<td style='font-family:monospace'>{html.escape(text)}{ref}</td></tr>")
        return ("<table class='lines'><thead><tr><th>#</th><th>conf.</th><th>recognized"
                "<span style='color:#777'> (grey: reference)</span></th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>")

    def static_html(self) -> str:
        """The viewer as static HTML: each page (up to ``static_pages``) with overlay and line table."""
        parts = [legend_html(self.layers())]
        for page in self.document.pages[: self.static_pages]:
            pic = jpeg_bytes(render_overlay(page, self._image(page), self.layers(), width=self.width))
            parts.append(f"<h4>{html.escape(page.name)} ({len(page.lines)} lines)</h4>"
                         "<div style='display:flex;gap:16px;align-items:flex-start'>"
                         f"<div style='flex:0 0 {self.width}px'>{img_tag(pic, page.name, 'width:100%', 'image/jpeg')}</div>"
                         f"<div style='flex:1 1 auto'>{self.line_table_html(page)}</div></div>")
        if len(self.document.pages) > self.static_pages:
            parts.append(f"<p>… {len(self.document.pages) - self.static_pages} more pages (interactive view only)</p>")
        return "".join(parts)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _bundle(self.widget, self.static_html(), f"PageViewer({len(self.document.pages)} pages)")


class _ReviewRow:
    """One line of the review panel: diff, editable corrected text, accept and reject buttons."""

    def __init__(self, panel: "ReviewPanel", item: ReviewItem) -> None:
        self.panel, self.item = panel, item
        self.header = w.HTML()
        self.diff = w.HTML(f"<div style='font-family:monospace'>{diff_html(item.raw, item.corrected)}</div>")
        self.text = w.Text(value=item.corrected, layout=w.Layout(width="60%"))
        self.accept_button = w.Button(description="accept", button_style="success", icon="check",
                                      tooltip="keep the corrected text (or your edit of it) as a human variant")
        self.reject_button = w.Button(description="reject", button_style="danger", icon="times",
                                      tooltip="go back to the raw recognition, as a human variant")
        self.accept_button.on_click(self.on_accept)
        self.reject_button.on_click(self.on_reject)
        self.widget = w.VBox([self.header, self.diff, w.HBox([self.text, self.accept_button, self.reject_button])],
                             layout=w.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"))
        self.refresh()

    def refresh(self) -> None:
        it = self.item
        status = it.decision or ("refused by guard" if it.guard else ("proposed" if it.changed else "unchanged"))
        conf = f", confidence {it.confidence:.2f}" if it.confidence is not None else ""
        guard = f" · <span style='color:#a00'>guard: {html.escape(it.guard)}</span>" if it.guard else ""
        self.header.value = (f"<b>{html.escape(it.page)} · line {it.index}</b>{conf} · status: <b>{status}</b>"
                             f"{guard}")

    def on_accept(self, _button=None) -> None:
        """Click handler: write the text box's content back to the document as an accepted human variant."""
        self.panel.decide(self.item.line_id, "accept", self.text.value)

    def on_reject(self, _button=None) -> None:
        """Click handler: confirm the raw recognition as an accepted human variant."""
        self.panel.decide(self.item.line_id, "reject")


class ReviewPanel:
    """Raw vs corrected text per line, filters, accept/reject writing back to the document, export."""

    def __init__(self, document: Document, only: str = "auto", threshold: float = 0.6,
                 export_to: Union[str, Path, None] = None, limit: int = 40) -> None:
        """``only``: changed, low_confidence, all, or auto (changed lines, all lines when none changed)."""
        self.document, self.limit = document, limit
        self.note = ""
        if only == "auto":
            only = "changed" if review_items(document, "changed") else "all"
            if only == "all":
                self.note = "No line was changed or refused by the correction: showing all lines."
        self.filter = w.ToggleButtons(options=[("changed lines", "changed"), ("low confidence", "low_confidence"),
                                               ("all lines", "all")], value=only, description="show")
        self.threshold = w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.05, description="conf. below",
                                       continuous_update=False)
        self.export_path = w.Text(value=str(export_to or "out/reviewed"), description="export to")
        self.export_button = w.Button(description="export", icon="download")
        self.export_button.on_click(lambda _b: self.export())
        self.message = w.HTML()
        self.rows_box = w.VBox()
        self.rows: dict[str, _ReviewRow] = {}
        self.filter.observe(lambda _: self.refresh(), names="value")
        self.threshold.observe(lambda _: self.refresh(), names="value")
        self.widget = w.VBox([w.HBox([self.filter, self.threshold]), w.HTML(f"<i>{self.note}</i>" + DIFF_KEY),
                              self.rows_box,
                              w.HBox([self.export_path, self.export_button]), self.message])
        self.refresh()

    def items(self) -> list[ReviewItem]:
        return review_items(self.document, self.filter.value, self.threshold.value)

    def refresh(self) -> None:
        items = self.items()
        self.rows = {it.line_id: _ReviewRow(self, it) for it in items[: self.limit]}
        more = [w.HTML(f"<i>{len(items) - self.limit} more lines: narrow the filter</i>")] \
            if len(items) > self.limit else []
        empty = [w.HTML("<i>No line matches this filter.</i>")] if not items else []
        self.rows_box.children = [r.widget for r in self.rows.values()] + more + empty

    def decide(self, line_id: str, decision: str, text: Optional[str] = None):
        """Record a decision on a line (see :func:`biqe_lab.workbench.review.decide`) and update its row."""
        variant = decide(self.document, line_id, decision, text)
        row = self.rows.get(line_id)
        if row is not None:
            page = next(p for p in self.document.pages if any(l.id == line_id for l in p.lines))
            line = next(l for l in page.lines if l.id == line_id)
            from .review import review_item
            row.item = review_item(page, row.item.index, line)
            row.refresh()
        self.message.value = f"line {line_id}: {decision}ed -> “{html.escape(variant.text)}”"
        return variant

    def export(self, out: Union[str, Path, None] = None) -> dict:
        """Write the reviewed document (PageXML, ALTO, document.json) to ``out`` (default: the text box)."""
        target = Path(out or self.export_path.value)
        written = export_document(self.document, target)
        self.message.value = f"exported to {html.escape(str(target))}"
        return written

    def static_html(self) -> str:
        items = self.items()
        return (f"<p><i>{self.note}</i> filter: <b>{self.filter.value}</b>"
                + (f" (confidence below {self.threshold.value:.2f})" if self.filter.value == "low_confidence" else "")
                + f", {len(items)} lines</p>" + review_table_html(items, self.limit))

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _bundle(self.widget, self.static_html(), f"ReviewPanel({len(self.items())} lines)")
