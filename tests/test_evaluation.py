"""CER/WER: hand-computed corpus totals, line matching by overlap."""
import pytest

from biqe_lab import Document, ImageRef, Line, Page, Producer, TextVariant, evaluate
from biqe_lab.evaluation import match_lines, report, score_pairs


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
    assert js["per_page"] == [{"page": "p1", "lines": 3, "htr_cer": pytest.approx(2 / 14), "corrected_cer": None}]
    assert "corrected" not in js


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
    result = evaluate(Document(pages=[page]))
    refs = [l.reference for l in sample_document.pages[0].lines]
    expected_ref_chars = sum(len(r.strip()) for r in refs)
    assert result.total.ref_chars == expected_ref_chars
    assert result.total.char_errors == sum(1 for r in refs if r.strip()) + sum(1 for r in refs if not r.strip())
