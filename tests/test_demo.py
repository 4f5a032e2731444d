"""`biqe-lab demo`: held-out pages from the bundled model's card, the whole chain, a summary; synthetic without data."""
import json

import pytest

from biqe_lab.demo import held_out_pages, prepare_pages, run_demo


def test_demo_pages_are_the_bundled_model_s_held_out_pages(tmp_path, datasets):
    held_out = held_out_pages("peraire")
    assert len(held_out) >= 3
    demo = prepare_pages(tmp_path / "input", 2, datasets)
    assert [p.name for p in demo.images] == held_out[:2] and "held out" in demo.note
    assert all(p.with_suffix(".xml").is_file() for p in demo.images)  # with their ground truth, to score


@pytest.mark.slow
def test_demo_without_shared_data_runs_the_whole_chain_on_synthetic_pages_and_says_so(tmp_path, capsys):
    document = run_demo(tmp_path / "demo", pages=1, datasets=tmp_path / "no-datasets")
    out = capsys.readouterr().out
    assert "synthetic pages" in out and "no shared datasets" in out
    assert [r.step for r in document.processing] == ["layout", "recognition", "correction", "export"]
    for label in ("PAGE XML:", "ALTO:", "PDF/A:", "document.json:", "report:", "time per step: layout"):
        assert label in out, label
    assert "CER raw" in out and "-> corrected" in out
    assert (tmp_path / "demo" / "demo.pdf").stat().st_size > 0
    scores = json.loads((tmp_path / "demo" / "evaluation.json").read_text())
    assert "htr" in scores and "corrected" in scores
