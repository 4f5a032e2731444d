"""CER/WER: hand-computed corpus totals, partial references, line matching by overlap, training-split marks."""
import pytest

from pathlib import Path

from biqe_lab import Document, ImageRef, Line, Page, Producer, TextVariant, evaluate
from biqe_lab.evaluation import (HELD_OUT, NOT_IN_DATA, TRAIN, UNKNOWN, VALIDATION, format_table, has_ground_truth,
                                 match_lines, report, score_pairs, training_note, training_split)
from biqe_lab.model import ProcessingRecord


def test_score_pairs_are_corpus_totals_not_means():
    # "abc" -> "abd": 1 substitution; "hello world" -> "helo world": 1 deletion.
    rates = score_pairs([("abc", "abd"), ("hello world", "helo world")])
    assert (rates.char_errors, rates.ref_chars) == (2, 14)
    assert rates.cer == pytest.approx(2 / 14)  # the mean of line rates would be (1/3 + 1/11) / 2
    assert (rates.word_errors, rates.ref_words) == (2, 3)


def test_nfc_normalization_is_applied():
    decomposed = "e\u0301te\u0301"  # "été" with combining accents
    assert score_pairs([("été", decomposed)]).char_errors == 0


def _line(y, ref=None, hyp=None, lid=None):
    line = Line(id=lid or f"l{y}", baseline=[(10, y + 20), (190, y + 20)],
                polygon=[(10, y), (190, y), (190, y + 25), (10, y + 25)], reference=ref)
    if hyp is not None:
        line.add_variant(TextVariant(text=hyp, origin="htr", producer=Producer(engine="t")))
    return line


def _doc(lines, gt=None):
    return Document(pages=[Page(name="p1", image=ImageRef(path="p.png", width=200, height=300, sha256="0" * 64),
                                lines=lines, ground_truth=gt)])


def test_evaluate_with_ground_truth_layout():
    doc = _doc([_line(0, "abc", "abd"), _line(50, "hello world", "helo world"), _line(100, "", "")])
    result = evaluate(doc)
    assert result.cer == pytest.approx(2 / 14)
    js = report(result)
    assert js["pages"] == 1 and js["ref_chars"] == 14 and js["normalization"] == "NFC"
    assert js["per_page"] == [{"page": "p1", "lines": 2, "unreferenced_lines": 1, "htr_cer": pytest.approx(2 / 14),
                               "corrected_cer": None}]
    assert js["unreferenced_lines"] == 1 and "corrected" not in js


def test_partial_reference_lines_are_left_out_and_counted():
    """By hand: "abc" -> "abd" is 1 error in 3; the two lines without reference ("" and None) hold 4 + 1 chars."""
    doc = _doc([_line(0, "abc", "abd"), _line(50, "  ", "wxyz"), _line(100, None, "q"), _line(150, "de", "de")])
    result = evaluate(doc)
    assert (result.total.char_errors, result.total.ref_chars) == (1, 5)
    assert result.cer == pytest.approx(1 / 5) and result.lines == 2 and result.unreferenced == 2
    assert result.coverage_note() == "2 of 4 lines have no reference (left out of CER/WER)"
    table = format_table(report(result))
    assert "2 of 4 lines have no reference" in table
    kept = evaluate(doc, keep_unreferenced=True)  # the old scoring: their text counts as inserted
    assert (kept.total.char_errors, kept.total.ref_chars) == (1 + 4 + 1, 5)
    assert kept.lines == 4 and kept.unreferenced == 0 and "kept" in kept.coverage_note()
    full = _doc([_line(0, "abc", "abd")])
    assert evaluate(full).coverage_note() == "" and "no reference" not in format_table(report(evaluate(full)))
    assert not has_ground_truth(_doc([_line(0, hyp="x")])) and has_ground_truth(doc)


def _read_by(model_name, *image_paths):
    pages = [Page(name=Path(p).stem, image=ImageRef(path=p, width=10, height=10, sha256="0" * 64))
             for p in image_paths]
    doc = Document(pages=pages)
    doc.record(ProcessingRecord(step="recognition", engine="kraken", settings={"model": model_name}))
    return doc


def test_pages_of_the_models_training_split_are_marked():
    peraire = "/work/shared/datasets/peraire/train/"
    doc = _read_by("biqe-htr-default.safetensors", peraire + "B.1.intro-eurasie_0005.jpg",
                   peraire + "B.6.urss4_0050.jpg", peraire + "B.1b.europe-centrale_0005.jpg", "/tmp/new/letter.jpg",
                   "/elsewhere/copy/B.10.chine2_0020.jpg")
    marks = training_split(doc)
    assert {k: m["split"] for k, m in marks.items()} == {
        "B.1.intro-eurasie_0005": TRAIN, "B.6.urss4_0050": HELD_OUT, "B.1b.europe-centrale_0005": VALIDATION,
        "letter": NOT_IN_DATA, "B.10.chine2_0020": TRAIN}  # the last matched by its (unique) file name
    assert training_note(marks).startswith("3 of 5 pages were in the training data")
    # the card alone (no split file): held_out names the test pages, the rest of a named data set trained it
    from biqe_lab.model_registry import default_model, read_card

    card = read_card(default_model())
    alone = training_split(doc, card=card, split={})
    assert alone["B.6.urss4_0050"]["split"] == HELD_OUT and alone["B.1.intro-eurasie_0005"]["split"] == TRAIN
    assert alone["letter"]["split"] == NOT_IN_DATA
    tess = Document(pages=doc.pages)
    tess.record(ProcessingRecord(step="recognition", engine="tesseract", settings={"languages": ["fra"]}))
    assert {m["split"] for m in training_split(tess).values()} == {UNKNOWN} and training_note(training_split(tess)) == ""


def test_matching_counts_missed_as_deleted_and_extra_as_inserted():
    reference = [_line(0, "one"), _line(50, "two"), _line(100, "three")]
    predicted = [_line(52, hyp="tw"), _line(2, hyp="one"), _line(250, hyp="xy")]
    matched, missed, extra = match_lines(predicted, reference)
    assert [(r.reference, p.variant("htr").text) for r, p in matched] == [("one", "one"), ("two", "tw")]
    assert [r.reference for r in missed] == ["three"] and [p.variant("htr").text for p in extra] == ["xy"]


def test_evaluate_full_chain_against_the_ground_truth_file(tmp_path, sample_dir, sample_document):
    """Predicted lines = the reference geometry shifted by 3 px, text = reference with one typo."""
    page = sample_document.pages[0].model_copy(deep=True)
    lines = []
    for ref in page.lines:
        moved = [(x, y + 3) for x, y in ref.polygon]
        line = Line(id=ref.id, baseline=ref.baseline, polygon=moved)
        line.add_variant(TextVariant(text=(ref.reference or "") + "#", origin="htr", producer=Producer(engine="t")))
        lines.append(line)
    page.replace_layout([], lines)
    page.ground_truth.source = str(tmp_path / "moved-away.xml")  # read once at ingest: the file is not needed again
    result = evaluate(Document(pages=[page]))
    refs = [l.reference for l in sample_document.pages[0].lines]
    expected_ref_chars = sum(len(r.strip()) for r in refs)
    assert result.total.ref_chars == expected_ref_chars
    assert result.total.char_errors == sum(1 for r in refs if r.strip())  # lines without reference left out
    assert result.unreferenced == sum(1 for r in refs if not r.strip())
    kept = evaluate(Document(pages=[page]), keep_unreferenced=True)
    assert kept.total.char_errors == len(refs)  # "#" inserted on each empty-reference line too
