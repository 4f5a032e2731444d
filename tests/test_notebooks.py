"""The research workbench: tables vs evaluate, viewer and review widgets, nbval on every notebook, biqe-lab batch."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from biqe_lab import Document, Producer, evaluate
from biqe_lab.errors import InputError

from conftest import ROOT

BIN = ROOT / ".venv" / "bin" / "biqe-lab"
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
LOOP_NOTEBOOK = ROOT / "notebooks" / "04_correct_and_retrain.ipynb"  # trains a model: its own test below
READING_NOTEBOOKS = [nb for nb in NOTEBOOKS if nb != LOOP_NOTEBOOK]
BATCH_NOTEBOOK = ROOT / "notebooks" / "batch" / "run_dataset.ipynb"
LINE_SET = "lines/cremma_mss20"


def cli(*args, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="session")
def run(sample_dir):
    """The sample page recognized by tesseract on its ground-truth lines, evaluated (a workbench Run)."""
    from biqe_lab import workbench as wb

    return wb.process_dataset(sample_dir, pages=1, engine="tesseract", languages="fra")


class FakeBackend:
    """A correction back-end with fixed answers (the real Corrector and guards judge them)."""

    origin = "llm"
    producer = Producer(engine="fake-llm", model="fixed-answers", prompt_version="t1")

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def settings(self) -> dict:
        return {}

    def propose(self, lines, preset):
        from biqe_lab.correction import Proposal

        return [Proposal(id=l.id, text=self.answers.get(l.id, l.text)) for l in lines]


@pytest.fixture()
def corrected(run):
    """A copy of the recognized page after a correction step: line 1 fixed, line 2 refused by the guard."""
    from biqe_lab.correction import Corrector, correct_document, load_preset

    document = run.document.model_copy(deep=True)
    first, second = document.pages[0].lines[:2]
    fixed = first.variant("htr").text[:-1] + "§"
    backend = FakeBackend({first.id: fixed, second.id: ""})
    correct_document(document, Corrector("cheap", backend, load_preset("generic_historical")))
    return document, first.id, second.id, fixed


# -- tables and plots agree with evaluate ------------------------------------------------------------

def test_tables_add_up_to_evaluate(run):
    from biqe_lab import workbench as wb

    ev = evaluate(run.document, "htr")
    pages = wb.page_table(run)
    assert list(pages["CER"]) == [p.rates.cer for p in ev.per_page]
    lines = wb.line_table(run)
    assert lines["char_errors"].sum() == ev.total.char_errors
    assert lines["ref_chars"].sum() == ev.total.ref_chars
    assert wb.dataset_table(run)["CER"].iloc[0] == ev.cer
    confusions = wb.confusion_table(run, top=10_000)
    assert confusions["count"].sum() == ev.total.char_errors  # every character error is counted once
    assert wb.worst_lines(run, n=3)["CER"].is_monotonic_decreasing


def test_char_ops_and_diff_html():
    from biqe_lab.workbench import char_ops, diff_html

    assert char_ops("chat", "chats") == [("equal", "chat", "chat"), ("insert", "", "s")]
    out = diff_html("le chat", "la chats")
    assert "<ins" in out and "<del" in out and "substituted: e → a" in out
    assert diff_html("<b>", "<b>") == "&lt;b&gt;"


def test_plots_render(run, tmp_path):
    from biqe_lab import workbench as wb
    from biqe_lab.workbench.display import figure_png

    for fig in (wb.cer_per_page(wb.page_table(run)), wb.cer_vs_confidence(wb.line_table(run)),
                wb.confusion_bars(wb.confusion_table(run), wb.confusion_table(run, substitutions_only=True))):
        assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no page" in wb.cer_per_page(wb.page_table([])).axes[0].texts[0].get_text()


# -- the page viewer ---------------------------------------------------------------------------------

def test_overlay_outlines_the_selected_line_and_never_fills_it(run):
    from biqe_lab.workbench import Layers, render_overlay

    page = run.document.pages[0]
    line = page.lines[3]
    bare = render_overlay(page, layers=Layers(False, False, False, False), width=600)
    plain = render_overlay(page, width=600)
    marked = render_overlay(page, highlight=line.id, width=600)
    scale = 600 / page.image.width
    x0, y0, x1, y1 = line.bbox
    inside = (round((x0 + x1) / 2 * scale), round((y0 + y1) / 2 * scale))
    assert marked.getpixel(inside) == bare.getpixel(inside)  # the selected line's ink is not washed over
    edge = [(round(x * scale), round(y * scale)) for x, y in line.polygon]
    assert any(marked.getpixel(p)[0] > 200 and marked.getpixel(p)[2] < 90 for p in edge)  # orange outline
    # polygons off and nothing selected: no green anywhere (toggles hide all they name; no fill stays behind)
    off = render_overlay(page, layers=Layers(polygons=False, baselines=False, regions=False, order=False), width=600)
    assert off.tobytes() == bare.tobytes()
    faint = render_overlay(page, layers=Layers(opacity=0.2), width=600)
    assert faint.tobytes() != plain.tobytes()
    zoomed = render_overlay(page, highlight=line.id, zoom=4, width=600)
    assert zoomed.size[0] == 600
    panned = render_overlay(page, highlight=line.id, zoom=4, width=600, pan=(0.5, 0.0))
    assert panned.tobytes() != zoomed.tobytes()  # pan moves the view


def test_zoom_keeps_the_start_of_a_long_line_in_view(run):
    from biqe_lab.workbench.overlay import focus_point, view_box

    page = run.document.pages[0]
    line = max(page.lines, key=lambda l: l.bbox[2] - l.bbox[0])
    x0, y0, x1, y1 = view_box(page, 4, focus_point(page, line, 4))
    assert x0 <= line.bbox[0] < x1 and y0 <= (line.bbox[1] + line.bbox[3]) / 2 <= y1


def test_line_crops_are_colour_64px_from_the_page(run):
    from biqe_lab.workbench import crop_line

    page = run.document.pages[0]
    crop = crop_line(page, page.lines[2])
    assert crop.mode == "RGB" and crop.height == 64
    pixels = [crop.getpixel((x, y)) for x in range(0, crop.width, 2) for y in range(0, 64, 2)]
    assert sum(1 for r, g, b in pixels if b - r > 25) > 12  # the blue ink of the peraire hand, in colour
    assert crop_line(page, page.lines[2], masked=True).mode == "L"


def test_clicking_a_line_highlights_it(run):
    from biqe_lab.workbench import PageViewer

    viewer = PageViewer(run.document, width=500)
    page = run.document.pages[0]
    before = viewer.image.value
    target = page.lines[5]
    viewer.lines.value = target.id  # what a click in the line table does
    assert viewer.selected == target.id
    assert viewer.image.value != before
    assert "line 6" in viewer.detail.value and "reference" in viewer.detail.value
    viewer.toggles["polygons"].value = False
    viewer.zoom.value = 3.0
    assert viewer.image.value != before
    bundle = viewer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"].count("data:image/jpeg;base64,") == 1 and "<table" in bundle["text/html"]
    assert len(viewer.lines.options) == len(page.lines) + 1


# -- correction review -------------------------------------------------------------------------------

def test_review_items_come_from_the_variants(corrected):
    from biqe_lab.workbench import review_items

    document, first, second, fixed = corrected
    changed = {it.line_id: it for it in review_items(document, "changed")}
    assert set(changed) == {first, second}
    assert changed[first].corrected == fixed and changed[first].guard is None
    assert changed[second].guard == "proposal deletes the line"  # the guard's own reason
    every = review_items(document, "all")
    assert len(every) == len(document.pages[0].lines)
    low = review_items(document, "low_confidence", threshold=0.3)
    assert low and all(it.confidence < 0.3 for it in low)
    with pytest.raises(InputError):
        review_items(document, "typo")


def test_review_buttons_write_human_variants_and_export(corrected, tmp_path):
    from biqe_lab.workbench import ReviewPanel

    document, first, second, fixed = corrected
    panel = ReviewPanel(document, only="changed", export_to=tmp_path / "reviewed")
    assert set(panel.rows) == {first, second}
    panel.rows[first].accept_button.click()
    line = next(l for l in document.pages[0].lines if l.id == first)
    human = line.current()
    assert (human.origin, human.status, human.text) == ("human", "accepted", fixed)
    assert human.parent == line.variant("llm").id and line.variant("llm").status == "superseded"
    assert "accepted" in panel.rows[first].header.value

    panel.rows[second].reject_button.click()
    line2 = next(l for l in document.pages[0].lines if l.id == second)
    assert line2.current().origin == "human" and line2.current().text == line2.variant("htr").text
    assert "rejected" in panel.rows[second].header.value

    panel.rows[first].text.value = "an edit by hand"
    panel.rows[first].accept_button.click()
    assert line.text == "an edit by hand" and "edited" in panel.rows[first].header.value
    assert [v.status for v in line.variants if v.origin == "human"] == ["superseded", "accepted"]

    panel.export_button.click()
    saved = Document.load(tmp_path / "reviewed" / "document.json")
    assert next(l for l in saved.pages[0].lines if l.id == first).text == "an edit by hand"
    page_xml = next((tmp_path / "reviewed" / "page").glob("*.xml")).read_text(encoding="utf-8")
    assert "an edit by hand" in page_xml
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_() and "proposal deletes the line" in panel.static_html()


def test_accepting_a_line_without_proposal_confirms_the_recognition(run):
    from biqe_lab.workbench import ReviewPanel

    document = run.document.model_copy(deep=True)
    panel = ReviewPanel(document, only="auto")  # nothing was corrected: every line is shown
    line = document.pages[0].lines[2]
    panel.rows[line.id].accept_button.click()
    assert line.current().origin == "human" and line.current().text == line.variant("htr").text
    assert "status: <b>accepted</b>" in panel.rows[line.id].header.value
    assert "No line was changed" in panel.static_html()
    # reject with nothing proposed: the reading is marked wrong (a rejected human variant), the raw text stands
    panel.rows[line.id].reject_button.click()
    human = line.variant("human")
    assert (human.status, human.parent) == ("rejected", line.variant("htr").id)
    assert line.current().origin == "htr" and "status: <b>rejected</b>" in panel.rows[line.id].header.value
    assert not any(v.status == "accepted" for v in line.variants)  # the earlier accept is superseded
    panel.rows[line.id].accept_button.click()  # changed one's mind: accepted again
    assert line.current().origin == "human" and "status: <b>accepted</b>" in panel.rows[line.id].header.value


def test_panel_state_follows_every_decision_and_saves_it(corrected, tmp_path):
    """Reject restores the raw text in the box; decide() from code updates the panel; each decision is on disk."""
    from biqe_lab.workbench import ReviewPanel, decide, load_run

    document, first, second, fixed = corrected
    document = document.model_copy(deep=True)
    saved = tmp_path / "document.json"
    panel = ReviewPanel(document, only="all", save_to=saved, limit=50)
    lines = {l.id: l for l in document.pages[0].lines}
    row = panel.rows[first]
    assert row.text.value == fixed and "line 1" in row.header.value
    assert panel.current == first and "3px" in row.widget.layout.border
    panel.key("r")  # reject the current line (line 1), then the panel moves on
    assert row.text.value == lines[first].variant("htr").text  # the box shows the raw text again
    assert "status: <b>rejected</b>" in row.header.value and panel.current == panel.order[1]
    assert "line 1: rejected" in panel.message.value and first not in panel.message.value  # no internal id
    on_disk = load_run(saved).document
    assert next(l for l in on_disk.pages[0].lines if l.id == first).current().origin == "human"

    third = panel.order[2]
    decide(document, third, "accept")  # from code, not from the panel
    assert "status: <b>accepted</b>" in panel.rows[third].header.value
    assert next(l for l in load_run(saved).document.pages[0].lines if l.id == third).text == lines[third].text

    panel.key("j")
    assert panel.current == third
    panel.key("k")
    panel.rows[panel.current].text.value = "typed by hand"  # Enter in the text box: an edit
    assert lines[panel.order[1]].text == "typed by hand" and "edited" in panel.rows[panel.order[1]].header.value
    assert panel.rows[panel.order[1]].text.value == "typed by hand"

    undecided = sum(1 for it in panel.items() if it.decision is None)
    panel.key("A")
    assert undecided > 0 and f"accepted {undecided} remaining" in panel.message.value
    reloaded = load_run(saved)
    assert all(l.current().origin == "human" for l in reloaded.document.pages[0].lines)
    assert ReviewPanel(reloaded.document, only="undecided").rows == {}  # a restart shows them decided


def test_review_rows_show_crop_reference_and_line_cer(corrected):
    from biqe_lab.workbench import ReviewPanel, review_items
    from biqe_lab.workbench.review import line_cer

    document, first, _second, fixed = corrected
    item = next(it for it in review_items(document) if it.line_id == first)
    line = document.pages[0].lines[0]
    assert item.cer_raw == line_cer(line.reference, item.raw) and item.cer_corrected == line_cer(line.reference, fixed)
    panel = ReviewPanel(document.model_copy(deep=True), only="changed")
    row = panel.rows[first]
    assert row.crop.value[:2] == b"\xff\xd8" and "reference:" in row.body.value  # a JPEG crop
    assert "CER " in row.header.value and "→" in row.header.value
    static = panel.static_html()
    assert "data:image/jpeg;base64," in static and "ref:" in static
    least = review_items(document, "least_confident", n=3)
    confidences = [it.confidence for it in least]
    assert len(least) == 3 and confidences == sorted(confidences)
    assert max(confidences) <= min(it.confidence for it in review_items(document) if it.confidence is not None
                                   and it.line_id not in {x.line_id for x in least})


def test_confidence_shading():
    from biqe_lab.workbench import confidence_html

    out = confidence_html("abc", [0.9, 0.3, 0.95], threshold=0.8)
    assert out.count("lowconf") == 1 and 'title="confidence 0.30"' in out and out.startswith("a")
    assert confidence_html("a<b", None) == "a&lt;b"


def _no_ground_truth(document):
    doc = document.model_copy(deep=True)
    for page in doc.pages:
        page.ground_truth = None
        for line in page.lines:
            line.reference = None
    return doc


def test_everything_works_without_ground_truth(run, tmp_path):
    from biqe_lab import workbench as wb

    path = _no_ground_truth(run.document).save(tmp_path / "new_pages.json")
    bare = wb.load_run(path)
    assert bare.htr is None and not bare.has_ground_truth
    assert wb.dataset_table(bare)["note"].iloc[0] == "no ground truth"
    assert wb.page_table(bare).empty and wb.line_table(bare).empty and wb.confusion_table(bare).empty
    assert "no ground truth" in wb.worst_lines_html(bare)
    for fig in (wb.cer_per_page(wb.page_table(bare)), wb.raw_vs_corrected(wb.page_table(bare)),
                wb.cer_vs_confidence(wb.line_table(bare))):
        assert fig.axes
    viewer = wb.PageViewer(bare.document)
    viewer.select_line(bare.document.pages[0].lines[1].id)
    assert "line 2" in viewer.detail.value and "reference:" not in viewer.detail.value
    panel = wb.ReviewPanel(bare.document, only="all", save_to=path)
    assert "no reference" in next(iter(panel.rows.values())).header.value
    panel.key("a")
    assert wb.load_run(path).document.pages[0].lines[0].current().origin == "human"
    metrics = wb.write_run_outputs(bare, tmp_path / "out", formats=("pagexml",))
    assert metrics["evaluation"] is None and metrics["provenance"]["engine"] == "tesseract"
    assert (tmp_path / "out" / "review.csv").read_text().count("\n") == len(bare.document.pages[0].lines) + 1


def test_search_hits_on_a_fixture():
    from biqe_lab import Document, ImageRef, Line, Page, Producer, TextVariant
    from biqe_lab.workbench import search

    def line(y, text):
        l = Line(baseline=[(0, y + 9), (90, y + 9)], polygon=[(0, y), (90, y), (90, y + 10), (0, y + 10)])
        l.add_variant(TextVariant(text=text, origin="htr", producer=Producer(engine="t")))
        return l

    pages = [Page(name=f"p{i}", image=ImageRef(path="x.png", width=100, height=100, sha256="0" * 64),
                  lines=[line(0, a), line(20, b)]) for i, (a, b) in enumerate([("Le chat dort", "la Chatte"),
                                                                              ("rien ici", "chat, chat")])]
    doc = Document(name="fixture", pages=pages)
    hits = search(doc, "chat")
    assert [(h.page, h.index, h.spans) for h in hits] == [("p0", 1, [(3, 7)]), ("p0", 2, [(3, 7)]),
                                                          ("p1", 2, [(0, 4), (6, 10)])]
    assert [h.page for h in search(doc, "Chat", case=True)] == ["p0"]
    assert [(h.page, h.index) for h in search(doc, r"\bchat\b", regex=True)] == [("p0", 1), ("p1", 2)]
    assert search([doc, doc], "rien")[1].document == "fixture"  # a batch: several documents
    with pytest.raises(InputError, match="not valid"):
        search(doc, "(", regex=True)


def test_viewer_search_outlines_hits_and_least_confident_filter(run):
    from biqe_lab.workbench import PageViewer

    viewer = PageViewer(run.document, width=500)
    word = run.document.pages[0].lines[0].text.split()[0]
    before = viewer.image.value
    hits = viewer.run_search(word)
    assert hits and viewer.image.value != before and "line 1" in viewer.hits_box.value
    assert "data:image/jpeg;base64," in viewer.hits_box.value and "<mark>" in viewer.hits_box.value
    viewer.show.value = 5
    numbers = [label.split()[0] for label, value in viewer.lines.options if value]
    confidences = [float(label.split()[1]) for label, value in viewer.lines.options if value]
    assert len(numbers) == 5 and confidences == sorted(confidences)
    viewer.run_search("(", regex=True)
    assert "not valid" in viewer.hits_box.value


def test_training_lines_for_the_loop(corrected, tmp_path):
    """The corrected lines as a line set: grey 64 px crops, their human text, writers in train and validation only."""
    from biqe_lab.training import plan_split
    from biqe_lab.workbench import decide, write_training_lines

    document = corrected[0].model_copy(deep=True)
    ids = [l.id for l in document.pages[0].lines[:7]]
    for i, line_id in enumerate(ids):
        decide(document, line_id, "edit", f"ligne corrigée {i}")
    folder = write_training_lines(document, ids, tmp_path / "lines", validation=2)
    plan = plan_split([folder])
    assert (len(plan.lines["train"]), len(plan.lines["validation"]), len(plan.lines["test"])) == (5, 2, 0)
    assert sorted(p.read_text(encoding="utf-8") for p in folder.glob("*.gt.txt"))[0] == "ligne corrigée 0\n"
    from PIL import Image

    crop = Image.open(sorted(folder.glob("*.png"))[0])
    assert crop.mode == "L" and crop.height == 64
    with pytest.raises(InputError, match="too few"):
        write_training_lines(document, ids[:2], tmp_path / "few", validation=2)


# -- batch: parameters and grids (no kernel) -----------------------------------------------------------

def test_batch_refuses_unknown_and_owned_parameters(tmp_path):
    from click.testing import CliRunner

    from biqe_lab.cli import main

    def batch(*args):
        return CliRunner().invoke(main, ["batch", str(BATCH_NOTEBOOK), *args, "--out", str(tmp_path)])

    result = batch("-p", "datset", "peraire/train")
    assert result.exit_code == 2
    assert "has no parameter datset" in result.stderr and "dataset" in result.stderr.split("parameters are:")[1]
    result = batch("-p", "output_dir", "x")
    assert result.exit_code == 2 and "--out" in result.stderr
    result = batch("-p", "pages", "two")
    assert result.exit_code == 2 and "pages" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_grid_files(tmp_path):
    from biqe_lab.batch import check_parameters, load_grid, notebook_parameters

    declared = notebook_parameters(ROOT / "notebooks" / "03_evaluate.ipynb")
    grid = tmp_path / "grid.yaml"
    grid.write_text("tiers: [[none], [none, cheap]]\ndatasets: [peraire/train]\npages: [1, 2]\n")
    runs = load_grid(grid, declared)
    assert runs == [{"tiers": t, "datasets": ["peraire/train"], "pages": p}
                    for t in (["none"], ["none", "cheap"]) for p in (1, 2)]
    grid.write_text("runs:\n  - {pages: 1}\n  - {pages: 3, engine: kraken}\n")
    assert load_grid(grid, declared) == [{"pages": 1}, {"pages": 3, "engine": "kraken"}]
    assert check_parameters({"pages": "3", "datasets": "[a, b]"}, declared, grid) == {"pages": 3,
                                                                                     "datasets": ["a", "b"]}
    grid.write_text("pages: []\n")
    with pytest.raises(InputError):
        load_grid(grid, declared)


# -- the real runs: biqe-lab batch end to end, nbval on every notebook ---------------------------------

@pytest.mark.slow
def test_batch_grid_report_matches_evaluate(tmp_path, sample_dir, datasets):
    line_set = datasets / LINE_SET  # its first "page" is one line image: a cheap second run
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"dataset: ['{sample_dir}', '{line_set}']\n")
    result = cli("batch", BATCH_NOTEBOOK, "--grid", grid, "-p", "pages", "1", "-p", "engine", "tesseract",
                 "-p", "languages", "fra", "--out", tmp_path / "reports", "--run-id", "grid1")
    assert result.returncode == 0, result.stderr[-3000:]
    root = tmp_path / "reports" / "grid1"
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    assert [p.name[:3] for p in runs] == ["01-", "02-"]

    evaluated = cli("evaluate", sample_dir, "--engine", "tesseract", "--lang", "fra", "-q", "--correction", "none",
                    "--json", tmp_path / "scores.json")
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["parameters"]["dataset"] == str(sample_dir)
    assert metrics["evaluation"] == scores  # the same pages, the same numbers as `biqe-lab evaluate`

    report = (runs[0] / "report.html").read_text(encoding="utf-8")
    table = evaluated.stdout.split("scores written")[0].strip()
    assert table in report.replace("&#x27;", "'")  # the evaluate table, verbatim
    assert f"{scores['htr']['cer']:.2%}" in report
    assert not re.search(r"""(src|href)=["']?https?://""", report) and "<script" not in report  # no CDN
    assert report.count("data:image/png;base64,") >= 3 and "data:image/jpeg;base64," in report
    for name in ("cer_per_page", "confusions", "cer_vs_confidence"):
        assert (runs[0] / "figures" / f"{name}.png").stat().st_size > 5000
    assert (runs[0] / "run_dataset.ipynb").is_file()
    assert (runs[0] / "exports" / "page" / f"{scores['per_page'][0]['page']}.xml").is_file()

    rows = json.loads((root / "comparison.json").read_text())
    second = json.loads((runs[1] / "metrics.json").read_text())
    assert [r["CER"] for r in rows] == [scores["htr"]["cer"], second["evaluation"]["htr"]["cer"]]
    assert [r["dataset"] for r in rows] == [str(sample_dir), str(line_set)]
    assert second["evaluation"]["pages"] == 1 and second["evaluation"]["lines"] == 1
    assert "comparison" in result.stdout and f"{scores['htr']['cer']:.2%}" in result.stdout
    assert "01-" in (root / "comparison.html").read_text()


@pytest.mark.slow
def test_a_failing_notebook_still_gets_its_report(tmp_path):
    result = cli("batch", BATCH_NOTEBOOK, "-p", "dataset", tmp_path / "missing", "--out", tmp_path, "--run-id", "bad")
    assert result.returncode == 12, result.stderr
    assert "report.html" in result.stderr
    report = (tmp_path / "bad" / "report.html").read_text(encoding="utf-8")
    assert "failed" in report and "is neither a folder nor a data set" in report
    assert json.loads((tmp_path / "bad" / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_every_notebook_runs_under_nbval(tmp_path, sample_dir, datasets):
    """nbval executes each notebook (copies with the size parameters set to a small real sample)."""
    import papermill

    line_set = datasets / LINE_SET
    small = {"pages": 1, "languages": "fra", "engine": "tesseract"}
    overrides = {
        "01_quickstart": {**small, "dataset": str(sample_dir)},
        "02_correction_review": {**small, "dataset": str(sample_dir), "tier": "cheap"},
        "03_evaluate": {**small, "datasets": [str(sample_dir), str(line_set)], "worst": 3},
        "run_dataset": {**small, "dataset": str(line_set)},  # biqe-lab batch runs it on a page above
    }
    assert {nb.stem for nb in READING_NOTEBOOKS} == set(overrides) and LOOP_NOTEBOOK in NOTEBOOKS
    copies = []
    for nb in READING_NOTEBOOKS:
        params = {**overrides[nb.stem], "output_dir": str(tmp_path / "out" / nb.stem)}
        declared = papermill.inspect_notebook(str(nb))
        assert set(params) <= set(declared), nb.name
        copy = tmp_path / nb.name
        papermill.iorw.write_ipynb(papermill.parameterize.parameterize_notebook(
            papermill.iorw.load_notebook_node(str(nb)), params), str(copy))
        copies.append(copy)
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                             "-p", "no:cacheprovider", "--nbval-cell-timeout", "600", *map(str, copies)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:]
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout
    assert (tmp_path / "out" / "run_dataset" / "metrics.json").is_file()
    assert (tmp_path / "out" / "02_correction_review" / "document.json").is_file()


@pytest.mark.slow
def test_every_notebook_runs_on_a_document_without_references(tmp_path, run):
    """A saved document.json with no ground truth (a job's output on new pages) through every notebook (nbval)."""
    import papermill

    path = _no_ground_truth(run.document).save(tmp_path / "new_pages.json")
    copies = []
    for nb in READING_NOTEBOOKS:  # the loop notebook needs ground truth to measure its fine-tune
        params = {"document": str(path), "output_dir": str(tmp_path / "out" / nb.stem)}
        declared = papermill.inspect_notebook(str(nb))
        assert set(params) <= set(declared), nb.name
        copy = tmp_path / nb.name
        papermill.iorw.write_ipynb(papermill.parameterize.parameterize_notebook(
            papermill.iorw.load_notebook_node(str(nb)), params), str(copy))
        copies.append(copy)
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                             "-p", "no:cacheprovider", "--nbval-cell-timeout", "300", *map(str, copies)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout
    metrics = json.loads((tmp_path / "out" / "run_dataset" / "metrics.json").read_text())
    assert metrics["evaluation"] is None and metrics["provenance"]["engine"] == "tesseract"
    reviewed = Document.load(path)  # notebook 02 saved its decisions back into the document it opened
    assert sum(1 for l in reviewed.pages[0].lines if l.variant("human")) == 2  # one accepted, one rejected


@pytest.mark.slow
def test_the_correct_and_retrain_notebook_on_a_tiny_run(tmp_path):
    """The loop on one held-out page (6 worst lines corrected), one epoch of fine-tuning, one held-out page scored."""
    import papermill

    out = tmp_path / "loop"
    papermill.execute_notebook(str(LOOP_NOTEBOOK), str(tmp_path / "loop.ipynb"), progress_bar=False,
                               parameters={"correct_pages": 1, "eval_pages": 1, "worst": 6, "epochs": 1,
                                           "output_dir": str(out)}, kernel_name="python3")
    summary = json.loads((out / "loop.json").read_text())
    assert [row["lines"] for row in summary] == ["other held-out pages", "uncorrected lines of the corrected pages"]
    assert all(0 < row["CER before"] < 1 and 0 < row["CER after"] < 1.5 for row in summary)
    lines = sorted((out / "lines").glob("*.gt.txt"))
    assert len(lines) == 6 and (out / "model.safetensors").stat().st_size > 100_000
    saved = Document.load(out / "document.json")  # the decisions, saved as they were made
    assert sum(1 for p in saved.pages for l in p.lines if l.variant("human")) == 6
    assert (out / "cer_before_after.png").stat().st_size > 5000


@pytest.mark.slow
def test_widgets_render_and_respond_in_jupyterlab(tmp_path, run):
    """In a real JupyterLab (headless chromium): clicking a line changes the picture, accept updates the row."""
    import socket
    import time
    import urllib.request

    import nbformat

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    run.document.save(tmp_path / "document.json")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("from biqe_lab import workbench as wb\n"
                                          "run = wb.load_run('document.json')\nwb.PageViewer(run.document, width=500)"),
                nbformat.v4.new_code_cell("wb.ReviewPanel(run.document, only='all', limit=3, save_to='reviewed.json')")]
    nbformat.write(nb, str(tmp_path / "view.ipynb"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lab = subprocess.Popen([str(ROOT / ".venv" / "bin" / "jupyter-lab"), "--no-browser", "--allow-root",
                            f"--port={port}", "--ip=127.0.0.1", "--IdentityProvider.token=",
                            "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and lab.poll() is None, "JupyterLab did not start"
                time.sleep(0.5)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/lab/tree/view.ipynb", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(timeout=120_000)  # the kernel is ready
            page.keyboard.press("Escape")
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=60_000)
            page.get_by_text("Run All Cells", exact=True).click(timeout=60_000)
            table = page.locator(".widget-select select").first
            try:
                table.wait_for(timeout=180_000)
            finally:
                page.screenshot(path=str(tmp_path / "lab.png"))
            picture = page.locator(".widget-image").first
            before = picture.get_attribute("src")
            table.select_option(index=6)  # click line 6 of the line table
            page.wait_for_function("before => document.querySelector('.widget-image').src !== before", arg=before,
                                   timeout=60_000)
            page.wait_for_selector("text=recognized:", timeout=60_000)  # the line's detail panel
            assert page.locator("text=recognized:").count() == 1
            page.screenshot(path=str(Path(os.environ.get("BIQE_NOTEBOOK_SCREENSHOTS", tmp_path)) / "viewer.png"))
            page.locator("button", has_text=re.compile(r"^\s*accept\s*$")).first.click()  # line 1's accept
            page.wait_for_selector("text=status: accepted", timeout=60_000)
            # the keyboard: focus the key strip, j moves to line 2, r rejects it (JupyterLab's own shortcuts stay out)
            cells_before = page.locator(".jp-Notebook .jp-Cell").count()
            page.locator("input.biqe-keys").click()
            page.keyboard.press("j")
            page.keyboard.press("r")
            shot = Path(os.environ.get("BIQE_NOTEBOOK_SCREENSHOTS", tmp_path)) / "review-panel.png"
            try:
                page.wait_for_selector("text=line 2: rejected", timeout=60_000)
                page.wait_for_selector("text=status: rejected", timeout=60_000)
            finally:
                page.screenshot(path=str(shot.with_name("review-keys.png")), full_page=True)
            assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before  # 'a'/'b' would add cells
            page.keyboard.press("A")
            lines = len(run.document.pages[0].lines)
            page.wait_for_selector(f"text=accepted {lines - 2} remaining lines", timeout=60_000)  # all but 1 and 2
            page.locator(".biqe-review").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
