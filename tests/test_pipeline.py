"""The runner: models loaded once, cancellation between steps, failing pages recorded or raised."""
import pytest
from PIL import Image

from biqe_lab import CancelToken, PipelineConfig, ingest, run_pipeline
from biqe_lab.errors import CancelledError, InputError
from biqe_lab.pipeline import steps_for


def test_models_load_once_per_configuration():
    config = PipelineConfig(layout="ground-truth", engine="tesseract", languages=("fra",))
    first, again = steps_for(config), steps_for(PipelineConfig(layout="ground-truth", engine="tesseract",
                                                               languages=("fra",)))
    assert first.layout is again.layout and first.recognizer is again.recognizer
    layout_only = steps_for(PipelineConfig(layout="ground-truth", steps=("layout", "export")))
    assert layout_only.layout is first.layout and layout_only.recognizer is None  # no recognizer loaded


def test_steps_are_checked():
    for bad, message in ((("recognition",), "needs 'layout'"), (("layout", "layout"), "twice"),
                         (("recognition", "layout"), "order"), (("layout", "ocr"), "unknown")):
        with pytest.raises(InputError, match=message):
            PipelineConfig(steps=bad)
    assert PipelineConfig(steps="layout, recognition").steps == ("layout", "recognition")
    with pytest.raises(InputError, match="correction tier"):
        PipelineConfig(correction="magic")
    assert not PipelineConfig(correction="cheap", steps=("layout", "recognition")).corrects


class _Recorder:
    def __init__(self):
        self.events = []

    def start(self, total):
        self.events.append(("start", total))

    def step(self, index, name, step):
        self.events.append((index, step))

    def page_done(self, index):
        self.events.append(("done", index))

    def finish(self):
        self.events.append(("finish",))


def test_ground_truth_pipeline_reports_progress_and_records_provenance(sample_document):
    doc = sample_document.model_copy(deep=True)
    doc.pages[0].lines = doc.pages[0].lines[:3]
    progress = _Recorder()
    run_pipeline(doc, PipelineConfig(layout="ground-truth", engine="tesseract", languages=("fra",), correction="none"),
                 progress=progress)
    assert progress.events == [("start", 1), (0, "layout"), (0, "recognition"), ("done", 0), ("finish",)]
    assert all(l.variant("htr") is not None for l in doc.pages[0].lines)
    assert [r.step for r in doc.processing] == ["layout", "recognition"]
    assert doc.processing[1].settings["languages"] == ["fra"]


def test_cancel_stops_before_the_next_page(sample_document):
    doc = sample_document.model_copy(deep=True)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        run_pipeline(doc, PipelineConfig(layout="ground-truth", languages=("fra",)), cancel=token)
    assert all(l.variant("htr") is None for l in doc.pages[0].lines)


def test_failing_page_is_recorded_or_raised(tmp_path):
    for name in ("a", "b"):
        Image.new("L", (50, 20), 255).save(tmp_path / f"{name}.png")
    doc = ingest(tmp_path)  # no ground truth: the ground-truth layout fails on every page
    with pytest.raises(InputError, match="no ground-truth XML"):
        run_pipeline(doc.model_copy(deep=True), PipelineConfig(layout="ground-truth"))
    kept = run_pipeline(doc, PipelineConfig(layout="ground-truth", on_page_error="record"))
    assert [p.name for p in kept.pages] == ["a", "b"]
    assert all(p.error.step == "layout" and p.error.code == "invalid_input" and "no ground-truth XML" in p.error.message
               for p in kept.pages)
    layout = next(r for r in kept.processing if r.step == "layout")  # each failure is a warning of its step
    assert [(w.page, w.message.startswith("page failed in layout: page")) for w in layout.warnings] == [
        ("a", True), ("b", True)]
    assert kept.warnings()[0].startswith("a: page failed in layout")


def test_one_set_of_defaults_for_every_front_end():
    from click.testing import CliRunner

    from biqe_lab import defaults
    from biqe_lab.api import validation
    from biqe_lab.cli import main
    from biqe_lab.pipeline import configure

    config = PipelineConfig()
    assert (config.layout, config.engine, config.languages, config.correction, config.preset, config.pdf,
            config.steps) == (defaults.DEFAULT_LAYOUT, defaults.DEFAULT_ENGINE, defaults.DEFAULT_LANGUAGES,
                              defaults.DEFAULT_CORRECTION, "auto", defaults.DEFAULT_PDF_FORMAT,
                              defaults.PIPELINE_STEPS)
    assert configure(engine=None, preset=None) == config  # None: the user did not ask, the default stays
    assert (validation.LLM_TIERS, validation.DEFAULT_LLM_TIER, validation.DEFAULT_PRESET,
            validation.DEFAULT_PDF_FORMAT) == (defaults.CORRECTION_TIERS, config.correction, config.preset, config.pdf)
    assert validation.PRESETS[0] == "auto" and set(validation.PRESETS[1:]) == set(defaults.preset_names())
    help_text = " ".join(CliRunner().invoke(main, ["process", "--help"]).output.split())
    for choices in (defaults.CORRECTION_TIERS, defaults.PDF_FORMATS, defaults.ENGINES, defaults.LAYOUTS):
        assert "[" + "|".join(choices) + "]" in help_text, choices
    assert "[default: cheap]" in help_text and "[default: auto]" in help_text and "[default: pdfa-2b]" in help_text


def test_no_choice_list_is_written_twice_in_the_code():
    """The choice literals stand in biqe_lab/defaults.py only (pdf.py maps formats to OCRmyPDF's names)."""
    import re
    from pathlib import Path

    import biqe_lab

    root = Path(biqe_lab.__file__).parent
    literals = [r"\"pdfa-1b\",\s*\"pdfa-3b\"", r"\"cheap\",\s*\"balanced\"", r"\"kraken\",\s*\"tesseract\"",
                r"\"layout\",\s*\"recognition\""]
    found = {str(path.relative_to(root)) for path in root.rglob("*.py") for pattern in literals
             if re.search(pattern, path.read_text(encoding="utf-8"))}
    assert found == {"defaults.py"}, found


def test_export_is_the_runner_s_last_step(sample_document, tmp_path):
    doc = sample_document.model_copy(deep=True)
    doc.pages[0].lines = doc.pages[0].lines[:2]
    config = PipelineConfig(layout="ground-truth", engine="tesseract", languages=("fra",), correction="none",
                            pdf="none")
    progress = _Recorder()
    run_pipeline(doc, config, progress=progress, out=tmp_path / "out")
    assert progress.events[-2:] == [(0, "export"), ("finish",)]
    assert [r.step for r in doc.processing] == ["layout", "recognition", "export"]
    page = doc.pages[0].name
    assert (tmp_path / "out" / "page" / f"{page}.xml").is_file() and (tmp_path / "out" / "alto" / f"{page}.xml").is_file()
    from biqe_lab.pipeline import written_files

    assert written_files(doc, tmp_path / "out")["alto"] == [tmp_path / "out" / "alto" / f"{page}.xml"]
    bare = sample_document.model_copy(deep=True)
    run_pipeline(bare, PipelineConfig(layout="ground-truth", steps=("layout",)), out=tmp_path / "bare")
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["document.json"]  # no export step: the JSON


def test_cancel_between_pages_really_stops_between_them(tmp_path, sample_dir):
    """Cancelled while page 1 is processed: page 1 finishes its step, page 2 is never started."""
    import shutil

    for name in ("p1", "p2"):
        for suffix in (".jpg", ".xml"):
            shutil.copy2(next(sample_dir.glob(f"*{suffix}")), tmp_path / f"{name}{suffix}")
    doc = ingest(tmp_path)
    token = CancelToken()

    class CancelAfterFirstPage(_Recorder):
        def page_done(self, index):
            super().page_done(index)
            token.cancel()

    progress = CancelAfterFirstPage()
    with pytest.raises(CancelledError, match="before page p2"):
        run_pipeline(doc, PipelineConfig(layout="ground-truth", steps=("layout",)), progress=progress, cancel=token)
    assert progress.events == [("start", 2), (0, "layout"), ("done", 0), ("finish",)]


def test_auto_preset_is_recorded_in_the_processing_record(sample_document):
    doc = sample_document.model_copy(deep=True)
    doc.pages[0].lines = doc.pages[0].lines[:6]
    run_pipeline(doc, PipelineConfig(layout="ground-truth", engine="tesseract", languages=("fra",)))
    record = next(r for r in doc.processing if r.step == "correction")
    assert record.settings["preset"] == "auto" and record.settings["tier"] == "cheap"
    choice = record.settings["preset_choice"]
    assert set(choice["pages"]) == {doc.pages[0].name} and choice["final"]["reason"]
    assert [w.page for w in record.warnings] == [None] and record.warnings[0].message.startswith("preset auto chose")
    assert any(w.startswith("preset auto chose") for w in doc.warnings())
