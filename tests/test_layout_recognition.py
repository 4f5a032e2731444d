"""kraken layout on a real page, the kraken engine's plumbing, tesseract on real line crops."""
import pytest
from shapely.geometry import LineString

from biqe_lab.errors import InputError, ModelError
from biqe_lab.geometry import shapely_polygon
from biqe_lab.ingest import open_image
from biqe_lab.recognition import KrakenRecognizer, TesseractRecognizer, line_image, parse_tesseract_tsv


def test_kraken_layout_finds_the_reference_lines(segmented_page):
    page, reference = segmented_page
    assert len(page.lines) >= 0.8 * len(reference)
    w, h = page.image.width, page.image.height
    for line in page.lines:
        assert all(0 <= x < w and 0 <= y < h for x, y in line.polygon + line.baseline)
    predicted = [shapely_polygon(l.polygon).buffer(3) for l in page.lines]
    covered = 0
    for ref in reference:
        base = LineString(ref.baseline)
        best = max(p.intersection(base).length / base.length for p in predicted)
        covered += best >= 0.5
    assert covered >= 0.8 * len(reference), f"{covered}/{len(reference)} reference baselines covered"


def test_kraken_layout_gives_regions_and_top_down_reading_order(segmented_page):
    page, _ = segmented_page
    assert page.regions and all(l.region_id in {r.id for r in page.regions} for l in page.lines if l.region_id)
    tops = [min(y for _, y in l.baseline) for l in page.lines]
    descending_steps = sum(b < a - 50 for a, b in zip(tops, tops[1:]))
    assert descending_steps <= len(tops) // 5  # mostly top to bottom on this one-column page


def test_kraken_recognizer_gives_line_and_character_confidences(tiny_kraken_model, sample_document):
    page = sample_document.pages[0].model_copy(deep=True)
    page.lines = page.lines[:4]
    KrakenRecognizer(tiny_kraken_model).recognize(page, open_image(page.image))
    variants = [line.variant("htr") for line in page.lines]
    assert all(v.producer.engine == "kraken" and v.producer.model == "tiny.mlmodel" for v in variants)
    assert all(len(v.char_confidences or []) == len(v.text) for v in variants)  # one per character, none if empty
    read = [v for v in variants if v.text]
    assert read, "the tiny model read nothing: the confidences went untested"  # no guard may skip the checks
    assert all(0 <= v.confidence <= 1 and all(0 <= c <= 1 for c in v.char_confidences) for v in read)


def test_bad_kraken_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        KrakenRecognizer(tmp_path / "missing.mlmodel")
    (tmp_path / "junk.mlmodel").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.mlmodel"):
        KrakenRecognizer(tmp_path / "junk.mlmodel")


def test_tesseract_reads_real_lines_with_confidences(sample_document):
    page = sample_document.pages[0].model_copy(deep=True)
    page.lines = page.lines[1:6]
    TesseractRecognizer(["fra"]).recognize(page, open_image(page.image))
    texts = [l.variant("htr").text for l in page.lines]
    assert sum(bool(t) for t in texts) >= 4
    assert all(0 <= l.variant("htr").confidence <= 1 for l in page.lines if l.variant("htr").text)


def test_tesseract_refuses_unknown_language():
    with pytest.raises(InputError, match="no language data for xxx"):
        TesseractRecognizer(["xxx"])


def test_line_image_masks_outside_the_polygon(sample_document):
    page = sample_document.pages[0]
    img = line_image(open_image(page.image), page.lines[1])
    assert img.mode == "L" and img.getpixel((0, 0)) == 255


def test_parse_tesseract_tsv_groups_words_by_image():
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
    rows = ["5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t80\tworld", "5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t60\tHello",
            "4\t2\t1\t1\t1\t0\t0\t0\t1\t1\t-1\t", "5\t3\t1\t1\t1\t1\t0\t0\t1\t1\t90\tok"]
    out = parse_tesseract_tsv(header + "\n".join(rows), 3)
    assert out == [("Hello world", pytest.approx(0.7)), ("", None), ("ok", pytest.approx(0.9))]


def test_trocr_engine_runs_batched_with_a_tiny_model(tiny_trocr_model, sample_document):
    from biqe_lab.recognition import TrocrRecognizer

    page = sample_document.pages[0].model_copy(deep=True)
    page.lines = page.lines[:5]
    engine = TrocrRecognizer(tiny_trocr_model, batch_size=2, max_new_tokens=8)
    engine.recognize(page, open_image(page.image))
    for line in page.lines:
        v = line.variant("htr")
        assert v.producer.engine == "trocr" and set(v.text) <= set("abcdefghijklmnopqrstuvwxyz .")
        assert v.confidence is None or 0 <= v.confidence <= 1
    assert engine.describe()["settings"]["batch_size"] == 2


def test_trocr_unknown_model_is_a_model_error(tmp_path):
    from biqe_lab.recognition import TrocrRecognizer

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load TrOCR model"):
        TrocrRecognizer(tmp_path / "empty")
