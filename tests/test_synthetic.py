"""Synthetic handwriting pages: deterministic per seed, degraded like scans, ground truth that fits the ink."""
import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from biqe_lab import ingest, synthetic
from biqe_lab.errors import InputError
from biqe_lab.synthetic import (CLEAN, DEGRADATIONS, SENTENCES, Degradations, handwriting_fonts, page_texts,
                                render_page, word_list, write_synthetic_pages)

# Geometry at its strongest (beyond the defaults), without the blur and JPEG that smear ink outwards.
STRONG_GEOMETRY = Degradations(rotation=2.0, slant=20.0, wobble=0.5, stroke=1.0, blur=0, jpeg=())
DARK = 200  # luminance below which a pixel is ink: the paper stays above ~215
WORD_LISTS_INSTALLED = all(path.is_file() for path in (synthetic.text.DICT_DIR / "french",
                                                      synthetic.text.DICT_DIR / "american-english"))
ELIDED = {"l", "d", "qu", "n", "s", "j"}  # French elided words, before the apostrophe
needs_word_lists = pytest.mark.skipif(not WORD_LISTS_INSTALLED, reason="wfrench/wamerican not installed")


def _polygon_mask(size, polygons, grow: int = 0) -> np.ndarray:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for polygon in polygons:
        draw.polygon([tuple(p) for p in polygon], fill=255, outline=255)
    if grow:
        mask = mask.filter(ImageFilter.MaxFilter(2 * grow + 1))
    return np.asarray(mask) > 0


def _dark(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L")) < DARK


def test_pages_are_reproducible_and_read_back(tmp_path, monkeypatch):
    assert handwriting_fonts()
    drawn = []

    def recording(text_lines, *args, **kwargs):
        drawn.append(list(text_lines))
        return render_page(text_lines, *args, **kwargs)

    monkeypatch.setattr(synthetic, "render_page", recording)
    a = write_synthetic_pages(tmp_path / "a", 2, seed=3)
    monkeypatch.undo()
    b = write_synthetic_pages(tmp_path / "b", 1, seed=3)  # the first page of the same seed
    c = write_synthetic_pages(tmp_path / "c", 1, seed=4)
    assert [p.name for p in a] == ["page_0001.png", "page_0002.png"]
    assert a[0].read_bytes() == b[0].read_bytes()
    assert a[0].with_suffix(".xml").read_bytes() == b[0].with_suffix(".xml").read_bytes()
    assert a[0].read_bytes() != c[0].read_bytes()
    assert a[0].read_bytes() != a[1].read_bytes()

    doc = ingest(tmp_path / "a")
    assert len(doc.pages) == 2
    for page, texts in zip(doc.pages, drawn):
        assert 8 <= len(page.lines) <= 14
        assert [line.reference for line in page.lines] == texts
        assert all(0 <= x < page.image.width and 0 <= y < page.image.height
                   for line in page.lines for x, y in line.polygon + line.baseline)
        assert all(len(line.baseline) > 2 for line in page.lines)  # a polyline following the wobble


def test_render_is_deterministic_and_degradations_change_it():
    lines = ["Le vent du soir passait", "sur les toits gris, 1887."]
    one, lines_one = render_page(lines, seed=5, width=600)
    two, lines_two = render_page(lines, seed=5, width=600)
    assert one.tobytes() == two.tobytes() and lines_one == lines_two
    assert render_page(lines, seed=6, width=600)[0].tobytes() != one.tobytes()
    # Blur and JPEG leave the geometry of the same seed alone; they change the pixels.
    sharp, lines_sharp = render_page(lines, seed=5, width=600, degradations=replace(DEGRADATIONS, blur=0, jpeg=()))
    assert lines_sharp == lines_one and sharp.tobytes() != one.tobytes()
    clean, lines_clean = render_page(lines, seed=5, width=600, degradations=CLEAN)
    assert lines_clean != lines_one
    # Without slant and rotation the polygon's sides are upright; slanted, they lean.
    for rendered in lines_clean:
        (left_top, _), (left_bottom, _) = rendered.polygon[0], rendered.polygon[-1]
        assert left_top == left_bottom
    leaning = [abs(r.polygon[0][0] - r.polygon[-1][0])
               for seed in range(4) for r in render_page(lines, seed, 600, degradations=replace(CLEAN, slant=20.0))[1]]
    assert max(leaning) > 5


@pytest.mark.parametrize("font", handwriting_fonts(), ids=lambda p: p.stem)
def test_polygons_hold_all_ink(font):
    """No ink outside the line polygons, with slant, wobble, rotation and pen changes at their strongest."""
    texts = ["Le notaire a signé l'acte, (1887) ;", "The old mill has stood there: a century!",
             "Quelques jambages, gypse et fjords."]
    for seed in (1, 2):
        image, lines = render_page(texts, seed=seed, width=900, fonts=[font], degradations=STRONG_GEOMETRY)
        inside = _polygon_mask(image.size, [line.polygon for line in lines])
        dark = _dark(image)
        assert dark.sum() > 1000
        assert not (dark & ~inside).any(), f"{(dark & ~inside).sum()} ink pixels outside the polygons"
        for line in lines:
            own = _polygon_mask(image.size, [line.polygon])
            assert (dark & own).sum() > 100
            assert all(own[min(int(y), image.height - 1), min(int(x), image.width - 1)] for x, y in line.baseline)


def test_polygons_hold_ink_of_blurred_jpeg_pages():
    """With all degradations on, only blur and JPEG ringing reach a few pixels beyond the polygons."""
    texts = page_texts(random.Random(9), 6, handwriting_fonts()[0])
    for seed in (3, 4):
        image, lines = render_page(texts, seed=seed, width=1000, degradations=replace(DEGRADATIONS, blur=1.5))
        near = _polygon_mask(image.size, [line.polygon for line in lines], grow=3)
        assert not (_dark(image) & ~near).any()


@needs_word_lists
def test_word_list_lines_mix_languages_and_fit_the_font():
    french, english = set(word_list("fra")[0]), set(word_list("eng")[0])
    assert "maison" in french and "house" in english
    vocabulary = french | english | {w.lower() for w in word_list("fra")[1] + word_list("eng")[1]}
    vocabulary |= set(synthetic.text._FUNCTION_WORDS["fra"]) | set(synthetic.text._FUNCTION_WORDS["eng"])
    fonts = handwriting_fonts()
    pages = [page_texts(random.Random(seed), 12, fonts[seed % len(fonts)]) for seed in range(12)]
    lines = [line for page in pages for line in page]
    composed = [line for line in lines if line not in SENTENCES]
    assert len(composed) > len(lines) / 2  # mostly word-list lines, some built-in sentences
    assert len(set(lines)) > 0.9 * len(lines)
    for line in composed:
        words = re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", line)
        assert 3 <= len([w for w in line.split() if any(c.isalnum() for c in w)]) <= 10
        assert len(line) <= synthetic.text.MAX_LINE_CHARS + 2
        for word in words:
            assert word in vocabulary or word.lower() in vocabulary or word.lower() in ELIDED, (word, line)
    assert any(c.isdigit() for line in composed for c in line)
    assert any(line[0].isupper() for line in composed) and any("," in line for line in composed)
    # Pages differ in their main language.
    french_share = [sum(line in SENTENCES[:15] or any(w in french and w not in english for w in line.split())
                        for line in page) / len(page) for page in pages]
    assert min(french_share) < 0.5 < max(french_share)


@needs_word_lists
def test_words_a_font_cannot_draw_are_left_out():
    ecolier = next((f for f in handwriting_fonts() if "ecolier" in f.name.lower()), None)
    if ecolier is None:
        pytest.skip("fonts-ecolier-court not installed")
    missing = {c for c in "ñóúíáÅå" if not synthetic.fonts._font_draws(str(ecolier), c)}
    assert missing
    lines = page_texts(random.Random(1), 200, ecolier, languages=("eng",), text_source="words")
    assert all(not missing & set(line) for line in lines)
    assert all(line not in SENTENCES for line in lines)


def test_without_word_lists_lines_come_from_the_sentences(tmp_path):
    font = handwriting_fonts()[0]
    for source in ("mixed", "words", "sentences"):
        lines = page_texts(random.Random(2), 12, font, text_source=source, dict_dir=tmp_path)
        assert len(lines) == 12 and all(line in SENTENCES for line in lines)
    assert all(line in SENTENCES for line in page_texts(random.Random(2), 8, font, languages=("deu",),
                                                         dict_dir=tmp_path))
    with pytest.raises(InputError):
        page_texts(random.Random(2), 8, font, languages=("xx",))
    with pytest.raises(InputError):
        page_texts(random.Random(2), 8, font, text_source="poems")


def test_sentences_only_pages(tmp_path):
    paths = write_synthetic_pages(tmp_path, 1, seed=1, text_source="sentences", dict_dir=Path(tmp_path / "none"))
    references = [line.reference for line in ingest(tmp_path).pages[0].lines]
    assert paths and references and all(text in SENTENCES for text in references)
