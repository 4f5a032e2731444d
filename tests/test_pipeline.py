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
    run_pipeline(doc, PipelineConfig(layout="ground-truth", engine="tesseract", languages=("fra",)), progress=progress)
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
    assert all(p.error and "no ground-truth XML" in p.error for p in kept.pages)
