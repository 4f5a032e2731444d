"""ipywidgets 8 page viewer and review panel (keyboard, line crops, saved decisions); static renderings for headless runs."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Optional, Union

import anywidget
import ipywidgets as w
import traitlets
from PIL import Image

from ..errors import InputError
from ..ingest import open_image
from ..model import Document, Page
from ..pipeline import configure, export as export_step
from .display import img_tag
from .overlay import Layers, crop_line, jpeg_bytes, legend_html, render_overlay
from .review import (_LISTENERS, CONFIDENCE_KEY, DIFF_KEY, ReviewItem, cer_html, confidence_html, decide, diff_html,
                     review_item, review_items, review_table_html)
from .search import marked_html, search

_MONO_CSS = ("<style>.biqe-lines select{font-family:monospace;font-size:12px;min-width:100%;width:auto}"
             ".biqe-lines{overflow-x:auto}</style>")


def _bundle(widget: w.Widget, static_html: str, text: str) -> dict:
    """A widget's mime bundle plus a static fallback (text/html) that frontends without widgets show."""
    bundle = dict(widget._repr_mimebundle_())
    bundle["text/html"] = static_html
    bundle["text/plain"] = text
    return bundle


def line_label(number: int, text: str, confidence: Optional[float], width: int = 90) -> str:
    conf = f"{confidence:4.2f}" if confidence is not None else "  – "
    text = text if len(text) <= width else text[: width - 1] + "…"
    return f"{number:>3}  {conf}  {text}"


class KeyCatcher(anywidget.AnyWidget):
    """A focusable strip that sends the review keys to Python (j/k or arrows, a, r, e, A, Enter)."""

    _esm = """
    const KEYS = ['j', 'k', 'a', 'r', 'e', 'A', 'ArrowDown', 'ArrowUp', 'Enter'];
    function render({ model, el }) {
      const box = document.createElement('input');
      box.type = 'text';
      box.readOnly = true;
      box.className = 'biqe-keys';
      box.setAttribute('data-lm-suppress-shortcuts', 'true');
      box.style.cssText = 'width:100%;box-sizing:border-box;padding:6px 10px;border:2px dashed #888;' +
                          'border-radius:6px;cursor:pointer;font-size:13px;background:#fafafa';
      const show = () => { box.value = model.get('label'); };
      show();
      box.addEventListener('focus', () => { box.style.borderColor = '#ff8c00'; box.style.background = '#fff6ea'; });
      box.addEventListener('blur', () => { box.style.borderColor = '#888'; box.style.background = '#fafafa'; });
      box.addEventListener('keydown', (e) => {
        if (e.ctrlKey || e.metaKey || e.altKey || !KEYS.includes(e.key)) return;
        e.preventDefault();
        e.stopPropagation();
        if (e.key === 'e') {
          const input = el.closest('.biqe-review')?.querySelector('.biqe-current input[type=text]');
          if (input) { input.focus(); input.select(); }
        }
        model.send({ key: e.key });
      });
      model.on('change:label', show);
      el.appendChild(box);
    }
    export default { render };
    """
    label = traitlets.Unicode("").tag(sync=True)


class PageViewer:
    """A page with its layout outlined, the recognized lines beside it; selecting a line outlines it.

    Controls: page, layer toggles (each hides all it names), outline opacity, zoom and pan,
    a confidence threshold (characters below it shaded red), "N least confident lines", and a
    search box (text or regex) whose hits are listed and outlined on the page.
    """

    def __init__(self, document: Document, width: int = 820, origin: str = "current", static_pages: int = 3,
                 threshold: float = 0.5) -> None:
        if not document.pages:
            raise InputError("the document has no page to show")
        self.document, self.width, self.origin, self.static_pages = document, width, origin, static_pages
        self._images: dict[str, Image.Image] = {}
        self.selected: Optional[str] = None
        self.hits: list = []
        self.page_select = w.Dropdown(description="page", layout=w.Layout(width="360px"),
                                      options=[(f"{p.name} ({len(p.lines)} lines)", i)
                                               for i, p in enumerate(document.pages)])
        self.toggles = {name: w.ToggleButton(value=True, description=label, layout=w.Layout(width="auto"))
                        for name, label in (("regions", "regions"), ("polygons", "polygons"),
                                            ("baselines", "baselines"), ("order", "order numbers"))}
        self.opacity = w.FloatSlider(value=0.7, min=0.1, max=1.0, step=0.1, description="outlines",
                                     continuous_update=False, readout_format=".1f")
        self.zoom = w.FloatSlider(value=1.0, min=1.0, max=6.0, step=0.5, description="zoom",
                                  continuous_update=False, readout_format=".1f")
        self.pan_x = w.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.1, description="pan ←→",
                                   continuous_update=False, readout_format=".1f")
        self.pan_y = w.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.1, description="pan ↑↓",
                                   continuous_update=False, readout_format=".1f")
        self.threshold = w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.05, description="conf. below",
                                       continuous_update=False)
        self.show = w.Dropdown(options=[("all lines", "all"), ("10 least confident", 10),
                                        ("5 least confident", 5)], value="all", description="lines",
                               layout=w.Layout(width="240px"))
        self.query = w.Text(placeholder="search the document (Enter)", continuous_update=False,
                            layout=w.Layout(width="260px"))
        self.regex = w.Checkbox(value=False, description="regex", indent=False, layout=w.Layout(width="70px"))
        self.hits_box = w.HTML()
        self.lines = w.Select(options=[], rows=18, layout=w.Layout(width="100%"))
        self.lines.add_class("biqe-lines")
        self.image = w.Image(format="jpeg", layout=w.Layout(width=f"{width}px"))
        self.detail = w.HTML()
        self.legend = w.HTML(legend_html())
        self.page_select.observe(self._on_page, names="value")
        self.lines.observe(self.on_line_selected, names="value")
        for control in (self.zoom, self.pan_x, self.pan_y, self.opacity, self.threshold):
            control.observe(lambda _: self.render(), names="value")
        self.show.observe(lambda _: self._fill_lines(keep=True), names="value")
        self.query.observe(lambda _: self.run_search(), names="value")
        self.regex.observe(lambda _: self.run_search(), names="value")
        for toggle in self.toggles.values():
            toggle.button_style, toggle.icon = "info", "check"
            toggle.observe(self._on_toggle, names="value")
        controls = w.VBox([w.HBox([self.page_select, *self.toggles.values()], layout=w.Layout(flex_flow="row wrap")),
                           w.HBox([self.opacity, self.zoom, self.pan_x, self.pan_y],
                                  layout=w.Layout(flex_flow="row wrap")),
                           w.HBox([self.threshold, self.show, self.query, self.regex],
                                  layout=w.Layout(flex_flow="row wrap"))])
        side = w.VBox([w.HTML(_MONO_CSS + "<b>lines</b> (number, confidence, text): click one to outline it"),
                       self.lines, self.detail, self.hits_box],
                      layout=w.Layout(width="560px", min_width="360px", overflow="auto"))
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

    def _variant(self, line):
        return line.current() if self.origin == "current" else line.variant(self.origin)

    def _text(self, line) -> tuple[str, Optional[float]]:
        """The line's text (``origin``) and the recognizer's confidence (corrections carry none)."""
        variant = self._variant(line)
        raw = line.variant("htr")
        confidence = variant.confidence if variant and variant.confidence is not None else (
            raw.confidence if raw else None)
        return (variant.text if variant else ""), confidence

    def _char_confidences(self, line) -> tuple[str, Optional[list[float]]]:
        """The text shown with per-character confidences: those of the variant, else of the raw reading
        when the text is still the raw one."""
        variant, raw = self._variant(line), line.variant("htr")
        text = variant.text if variant else ""
        for v in (variant, raw):
            if v is not None and v.char_confidences and v.text == text:
                return text, v.char_confidences
        return text, None

    def _numbered(self) -> list[tuple[int, object]]:
        numbered = list(enumerate(self.page.lines, start=1))
        if self.show.value != "all":
            known = [(n, l) for n, l in numbered if self._text(l)[1] is not None]
            numbered = sorted(known, key=lambda nl: self._text(nl[1])[1])[: int(self.show.value)]
        return numbered

    def _fill_lines(self, keep: bool = False) -> None:
        previous = self.selected if keep else None
        options = [("(no line selected)", None)]
        for number, line in self._numbered():
            text, conf = self._text(line)
            options.append((line_label(number, text, conf), line.id))
        ids = {value for _, value in options}
        self.selected = previous if previous in ids else None
        with self.lines.hold_trait_notifications():
            self.lines.options = options
            self.lines.value = self.selected

    def _on_page(self, _change=None) -> None:
        self._fill_lines()
        self.render()

    def on_line_selected(self, change) -> None:
        """The line table's click handler: outline the clicked line (and centre the zoom on it)."""
        self.selected = change["new"]
        self.render()

    def select_line(self, line_id: Optional[str]) -> None:
        """Select a line as a click on the table does (on whichever page holds it)."""
        for index, page in enumerate(self.document.pages):
            if any(l.id == line_id for l in page.lines) and index != self.page_select.value:
                self.page_select.value = index
        if line_id not in {v for _, v in self.lines.options}:
            self.show.value = "all"
        self.lines.value = line_id

    def layers(self) -> Layers:
        return Layers(**{name: t.value for name, t in self.toggles.items()}, opacity=self.opacity.value)

    def run_search(self, query: Optional[str] = None, regex: Optional[bool] = None) -> list:
        """Search the document; hits are listed beside the page and outlined on it."""
        if query is not None:
            self.query.value = query
        if regex is not None:
            self.regex.value = regex
        text = self.query.value.strip()
        self.hits = []
        if text:
            try:
                self.hits = search(self.document, text, regex=self.regex.value, origin=self.origin)
            except InputError as exc:
                self.hits_box.value = f"<span style='color:#a00'>{html.escape(exc.message)}</span>"
                self.render()
                return []
        self.hits_box.value = self.hits_html(self.hits) if text else ""
        self.render()
        return self.hits

    def hits_html(self, hits, limit: int = 12) -> str:
        """The hits of a search: where, the line crop and the text with the match marked."""
        if not hits:
            return "<i>no line matches</i>"
        pages = {p.name: p for p in self.document.pages}
        rows = []
        for hit in hits[:limit]:
            page = pages[hit.page]
            line = next(l for l in page.lines if l.id == hit.line_id)
            crop = crop_line(page, line, self._image(page))
            rows.append(f"<div style='margin:4px 0'><b>{html.escape(hit.page)}, line {hit.index}</b><br>"
                        f"{img_tag(jpeg_bytes(crop), 'line image', 'max-width:100%;height:auto', 'image/jpeg')}"
                        f"<div style='font-family:monospace'>{marked_html(hit.text, hit.spans)}</div></div>")
        more = f"<i>… {len(hits) - limit} more</i>" if len(hits) > limit else ""
        return f"<b>{len(hits)} line{'s' if len(hits) != 1 else ''} match</b>" + "".join(rows) + more

    def picture(self, page: Optional[Page] = None, highlight: Optional[str] = None, zoom: Optional[float] = None
                ) -> Image.Image:
        page = page or self.page
        marks = [h.line_id for h in self.hits if h.page == page.name]
        return render_overlay(page, self._image(page), self.layers(), highlight or self.selected,
                              self.zoom.value if zoom is None else zoom, width=self.width,
                              pan=(self.pan_x.value, self.pan_y.value), marks=marks)

    def render(self) -> None:
        self.legend.value = legend_html(self.layers()) + (
            " <span style='font-size:12px;color:#c800a0'>■ search hits</span>" if self.hits else "")
        self.image.value = jpeg_bytes(self.picture())
        line = next((l for l in self.page.lines if l.id == self.selected), None)
        if line is None:
            self.detail.value = ""
            return
        text, conf = self._text(line)
        shown, chars = self._char_confidences(line)
        number = self.page.lines.index(line) + 1
        crop = crop_line(self.page, line, self._image(self.page))
        rows = [f"<b>line {number}</b>" + (f", confidence {conf:.2f}" if conf is not None else ""),
                img_tag(jpeg_bytes(crop), "line image", "max-width:100%;height:auto", "image/jpeg"),
                f"<div style='font-family:monospace'>recognized: "
                f"{confidence_html(shown, chars, self.threshold.value)}</div>"]
        if chars:
            rows.append(CONFIDENCE_KEY)
        if line.reference:
            rows.append(f"<div style='font-family:monospace'>reference: {html.escape(line.reference)}</div>"
                        f"<div style='font-family:monospace'>diff: {diff_html(line.reference, text)}</div>")
        elif line.reference is not None or self.page.ground_truth:
            rows.append("<div style='color:#888'>no reference for this line</div>")
        self.detail.value = "".join(rows)

    def line_table_html(self, page: Page) -> str:
        rows = []
        for number, line in enumerate(page.lines, start=1):
            text, conf = self._text(line)
            shown, chars = self._char_confidences(line)
            ref = f"<br><span style='color:#777'>{html.escape(line.reference)}</span>" if line.reference else ""
            rows.append(f"<tr><td>{number}</td><td>{'' if conf is None else f'{conf:.2f}'}</td>"
                        f"<td style='font-family:monospace'>{confidence_html(shown, chars, self.threshold.value)}"
                        f"{ref}</td></tr>")
        return ("<table class='lines'><thead><tr><th>#</th><th>conf.</th><th>recognized"
                "<span style='color:#777'> (grey: reference)</span></th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>")

    def static_html(self) -> str:
        """The viewer as static HTML: each page (up to ``static_pages``) with overlay and line table."""
        parts = [legend_html(self.layers()), CONFIDENCE_KEY]
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


KEY_HELP = ("click here, then: j or ↓ next · k or ↑ previous · a (or Enter) accept · r reject · "
            "e edit (type, then Enter saves the edit) · A accept all remaining")


class _ReviewRow:
    """One line of the review panel: line image, texts and diff, reference and CER, editable text, buttons."""

    def __init__(self, panel: "ReviewPanel", item: ReviewItem) -> None:
        self.panel, self.item = panel, item
        self._updating = False
        self.header = w.HTML()
        self.crop = w.Image(format="jpeg", layout=w.Layout(max_width="100%", height="auto"))
        self.crop.value = panel.crop_bytes(item)
        self.body = w.HTML()
        self.text = w.Text(value=item.standing, continuous_update=False, layout=w.Layout(width="60%"),
                           tooltip="edit the text and press Enter to save your edit")
        self.accept_button = w.Button(description="accept", button_style="success", icon="check",
                                      tooltip="keep the corrected text (or your edit of it) as a human variant (a)")
        self.reject_button = w.Button(description="reject", button_style="danger", icon="times",
                                      tooltip="go back to the raw recognition, as a human variant (r)")
        self.accept_button.on_click(self.on_accept)
        self.reject_button.on_click(self.on_reject)
        self.text.observe(self.on_edit, names="value")
        self.editor = w.HBox([self.text, self.accept_button, self.reject_button])
        self.widget = w.VBox([self.header, self.crop, self.body, self.editor],
                             layout=w.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"))
        self.refresh()

    def refresh(self) -> None:
        it = self.item
        conf = f" · confidence {it.confidence:.2f}" if it.confidence is not None else ""
        guard = f" · <span style='color:#a00'>guard: {html.escape(it.guard)}</span>" if it.guard else ""
        self.header.value = (f"<b>{html.escape(it.page)} · line {it.index}</b>{conf} · {cer_html(it)} · "
                             f"status: <b>{it.status}</b>{guard}")
        ref = (f"<br><span style='color:#555'>reference:</span> {html.escape(it.reference or '')}"
               f"<br><span style='color:#555'>reference → standing:</span> {diff_html(it.reference or '', it.standing)}"
               if it.has_reference else "")
        self.body.value = (f"<div style='font-family:monospace;font-size:13px'>"
                           f"<span style='color:#555'>raw:</span> "
                           f"{confidence_html(it.raw, it.char_confidences, self.panel.confidence)}"
                           f"<br><span style='color:#555'>corrected:</span> {html.escape(it.corrected)}"
                           f"<br><span style='color:#555'>raw → corrected:</span> {diff_html(it.raw, it.corrected)}"
                           f"{ref}</div>")
        self._updating = True
        try:
            self.text.value = it.standing  # after reject: the raw text; after an edit: the edit
        finally:
            self._updating = False

    def set_current(self, current: bool) -> None:
        self.widget.layout.border = "3px solid #ff8c00" if current else "1px solid #ddd"
        (self.widget.add_class if current else self.widget.remove_class)("biqe-current")

    def on_accept(self, _button=None) -> None:
        """Click handler: keep the text box's content as an accepted human variant.

        The box's edit was saved already when it lost focus (then nothing more is written);
        after a reject the box holds the raw text, and accept takes the correction instead.
        """
        self.panel.select(self.item.line_id)
        text: Optional[str] = self.text.value
        if self.item.decision == "edited" and text == self.item.standing:
            return
        if self.item.decision == "rejected" and text == self.item.standing:
            text = None
        self.panel.decide(self.item.line_id, "accept", text)

    def on_reject(self, _button=None) -> None:
        """Click handler: confirm the raw recognition as an accepted human variant."""
        self.panel.select(self.item.line_id)
        self.panel.decide(self.item.line_id, "reject")

    def on_edit(self, change) -> None:
        """Enter in the text box: an edit, saved at once (unless the text is what stands already)."""
        if self._updating or change["new"] == self.item.standing:
            return
        self.panel.select(self.item.line_id)
        self.panel.decide(self.item.line_id, "edit", change["new"])


class ReviewPanel:
    """Line by line review: crop, raw/corrected/diff, reference and CER, keyboard decisions saved at once.

    Every decision (the buttons, the keys, Enter in a text box, or :func:`decide` from code)
    appends a ``human`` variant to the document and, with ``save_to``, writes the document
    to that JSON file at once, so a kernel restart loses nothing (``load_run(save_to)``
    shows the decisions again).
    """

    def __init__(self, document: Document, only: str = "auto", threshold: float = 0.6,
                 export_to: Union[str, Path, None] = None, limit: int = 40,
                 save_to: Union[str, Path, None] = None, confidence: float = 0.5, least: int = 20) -> None:
        """``only``: changed, low_confidence, least_confident, undecided, all, or auto (changed lines, all when none)."""
        self.document, self.limit, self.least = document, limit, least
        self.save_to = Path(save_to) if save_to else None
        self.confidence = confidence
        self.note = ""
        self._images: dict[str, Image.Image] = {}
        self._crops: dict[str, bytes] = {}
        self._pages = {line.id: page for page in document.pages for line in page.lines}
        if only == "auto":
            only = "changed" if review_items(document, "changed") else "all"
            if only == "all":
                self.note = "No line was changed or refused by the correction: showing all lines."
        self.filter = w.ToggleButtons(options=[("changed lines", "changed"), ("low confidence", "low_confidence"),
                                               (f"{least} least confident", "least_confident"),
                                               ("undecided", "undecided"), ("all lines", "all")],
                                      value=only, description="show")
        self.threshold = w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.05, description="conf. below",
                                       continuous_update=False)
        self.shade = w.FloatSlider(value=confidence, min=0.0, max=1.0, step=0.05, description="shade below",
                                   continuous_update=False, tooltip="characters below this confidence are shaded red")
        self.export_path = w.Text(value=str(export_to or "out/reviewed"), description="export to")
        self.export_button = w.Button(description="export", icon="download")
        self.export_button.on_click(lambda _b: self.export())
        self.keys = KeyCatcher(label=KEY_HELP)
        self.keys.on_msg(self._on_key_message)
        self.prev_button = w.Button(description="previous", icon="arrow-up", layout=w.Layout(width="110px"))
        self.next_button = w.Button(description="next", icon="arrow-down", layout=w.Layout(width="110px"))
        self.accept_all_button = w.Button(description="accept all remaining", button_style="warning", icon="check-square",
                                          tooltip="accept every undecided line of this filter (A)",
                                          layout=w.Layout(width="200px"))
        self.prev_button.on_click(lambda _b: self.move(-1))
        self.next_button.on_click(lambda _b: self.move(1))
        self.accept_all_button.on_click(lambda _b: self.accept_all_remaining())
        self.message = w.HTML()
        self.rows_box = w.VBox()
        self.rows: dict[str, _ReviewRow] = {}
        self.order: list[str] = []
        self.current: Optional[str] = None
        self.filter.observe(lambda _: self.refresh(), names="value")
        self.threshold.observe(lambda _: self.refresh(), names="value")
        self.shade.observe(self._on_shade, names="value")
        saved = (f"decisions are saved to <code>{html.escape(str(self.save_to))}</code> as you make them"
                 if self.save_to else "decisions stay in memory until you export (give save_to= to save each one)")
        self.widget = w.VBox([w.HBox([self.filter]), w.HBox([self.threshold, self.shade]),
                              w.HTML(f"<i>{self.note}</i> <span style='font-size:12px'>{saved}</span>"
                                     + DIFF_KEY + CONFIDENCE_KEY),
                              self.keys, w.HBox([self.prev_button, self.next_button, self.accept_all_button]),
                              self.message, self.rows_box, w.HBox([self.export_path, self.export_button])])
        self.widget.add_class("biqe-review")
        _LISTENERS.add(self)
        self.refresh()

    # -- pixels ------------------------------------------------------------------------------------
    def crop_bytes(self, item: ReviewItem) -> bytes:
        """The line's crop (colour, 64 px, the page's own pixels) as JPEG, made once per line."""
        if item.line_id not in self._crops:
            page = self._pages[item.line_id]
            if page.name not in self._images:
                self._images[page.name] = open_image(page.image)
            line = next(l for l in page.lines if l.id == item.line_id)
            self._crops[item.line_id] = jpeg_bytes(crop_line(page, line, self._images[page.name]), quality=90)
        return self._crops[item.line_id]

    # -- state -------------------------------------------------------------------------------------
    def items(self) -> list[ReviewItem]:
        return review_items(self.document, self.filter.value, self.threshold.value, n=self.least)

    def refresh(self) -> None:
        items = self.items()
        self.rows = {it.line_id: _ReviewRow(self, it) for it in items[: self.limit]}
        self.order = list(self.rows)
        more = [w.HTML(f"<i>{len(items) - self.limit} more lines: narrow the filter, or decide these "
                       f"and switch to 'undecided'</i>")] if len(items) > self.limit else []
        empty = [w.HTML("<i>No line matches this filter.</i>")] if not items else []
        self.rows_box.children = [r.widget for r in self.rows.values()] + more + empty
        self.select(self.current if self.current in self.rows else (self.order[0] if self.order else None))

    def _on_shade(self, change) -> None:
        self.confidence = change["new"]
        for row in self.rows.values():
            row.refresh()

    def select(self, line_id: Optional[str]) -> None:
        """Make ``line_id`` the current line (outlined orange; the keys act on it)."""
        self.current = line_id
        for lid, row in self.rows.items():
            row.set_current(lid == line_id)

    def move(self, step: int) -> Optional[str]:
        """Go to the next (``step`` 1) or previous (-1) line of the list."""
        if not self.order:
            return None
        at = self.order.index(self.current) if self.current in self.order else -1
        self.select(self.order[min(max(at + step, 0), len(self.order) - 1)])
        return self.current

    def where(self, line_id: str) -> str:
        page = self._pages[line_id]
        return f"{page.name}, line {next(i for i, l in enumerate(page.lines, 1) if l.id == line_id)}"

    # -- decisions ---------------------------------------------------------------------------------
    def decide(self, line_id: str, decision: str, text: Optional[str] = None):
        """Record a decision on a line (see :func:`biqe_lab.workbench.review.decide`); the row and file follow."""
        variant = decide(self.document, line_id, decision, text)
        past = {"accept": "accepted", "reject": "rejected", "edit": "edited"}[decision]
        self.message.value = f"{html.escape(self.where(line_id))}: {past} → “{html.escape(variant.text)}”" + (
            f" (saved to {html.escape(str(self.save_to))})" if self.save_to else "")
        return variant

    def decided(self, document: Document, line_id: str) -> None:
        """Told by :func:`decide` (from a button, a key or code): update the line's row and save the document."""
        if document is not self.document:
            return
        row = self.rows.get(line_id)
        if row is not None:
            page = self._pages[line_id]
            line = next(l for l in page.lines if l.id == line_id)
            row.item = review_item(page, row.item.index, line)
            row.refresh()
        if self.save_to is not None:
            self.save_to.parent.mkdir(parents=True, exist_ok=True)
            self.document.save(self.save_to)
        if row is None or row.item.decision is None:
            return
        self.message.value = (f"{html.escape(self.where(line_id))}: {row.item.decision} → "
                              f"“{html.escape(row.item.standing)}”"
                              + (f" (saved to {html.escape(str(self.save_to))})" if self.save_to else ""))

    def accept_all_remaining(self) -> int:
        """Accept every line of the current filter that has no decision yet; returns how many."""
        todo = [it for it in self.items() if it.decision is None]
        for it in todo:
            decide(self.document, it.line_id, "accept")
        self.message.value = f"accepted {len(todo)} remaining line{'s' if len(todo) != 1 else ''}" + (
            f" (saved to {html.escape(str(self.save_to))})" if self.save_to else "")
        return len(todo)

    def key(self, key: str) -> None:
        """What a key does (the key strip sends them): j/k/arrows move, a/Enter accept, r reject, A accept all."""
        if key in ("j", "ArrowDown"):
            self.move(1)
        elif key in ("k", "ArrowUp"):
            self.move(-1)
        elif key == "A":
            self.accept_all_remaining()
        elif key in ("a", "Enter", "r") and self.current in self.rows:
            row = self.rows[self.current]
            if key == "r":
                self.decide(self.current, "reject")
            else:
                row.on_accept()
            self.move(1)

    def _on_key_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and isinstance(content.get("key"), str):
            self.key(content["key"])

    def export(self, out: Union[str, Path, None] = None) -> dict:
        """Write the reviewed document (PageXML, ALTO, document.json) to ``out`` (default: the text box)."""
        target = Path(out or self.export_path.value)
        written = export_step(self.document, target, configure(pdf="none"))  # the review's XML, not a new PDF
        self.message.value = f"exported to {html.escape(str(target))}"
        return written

    def static_html(self) -> str:
        items = self.items()
        shown = items[: self.limit]
        images = {it.line_id: img_tag(self.crop_bytes(it), f"line {it.index}", "max-width:100%;height:auto",
                                      "image/jpeg") for it in shown}
        return (f"<p><i>{self.note}</i> filter: <b>{self.filter.value}</b>"
                + (f" (confidence below {self.threshold.value:.2f})" if self.filter.value == "low_confidence" else "")
                + f", {len(items)} lines</p>" + CONFIDENCE_KEY
                + review_table_html(items, self.limit, images, self.confidence))

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _bundle(self.widget, self.static_html(), f"ReviewPanel({len(self.items())} lines)")
