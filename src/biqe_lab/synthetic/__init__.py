"""Synthetic handwriting pages rendered with Debian handwriting fonts, with their PAGE ground truth.

The text comes from the Debian word lists of the target languages (random word sequences with
punctuation, capitals and numbers) and from built-in sentences (``text``); the pages carry the
degradations of real scans (slant, rotation, baseline wobble, pen width, uneven ink, paper
texture, blur, JPEG artefacts; ``render``) in the installed handwriting fonts (``fonts``).
Everything is drawn from a seed: the same seed writes the same files, and the ground-truth
baselines and polygons fit the ink as drawn. This module writes the pages and their ground truth.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional, Sequence

from ..export import render_page as render_export
from ..geometry import hull
from ..ingest import probe_image
from ..model import Document, Line, Page, ProcessingRecord, Producer, Region, TextVariant
from .fonts import FONT_PACKAGES, handwriting_fonts
from .render import CLEAN, DEGRADATIONS, Degradations, RenderedLine, render_page
from .text import LANGUAGES, SENTENCES, TEXT_SOURCES, compose_line, page_texts, word_list

__all__ = ["CLEAN", "DEGRADATIONS", "FONT_PACKAGES", "LANGUAGES", "SENTENCES", "TEXT_SOURCES", "Degradations",
           "RenderedLine", "compose_line", "ground_truth_page", "handwriting_fonts", "page_texts", "render_page",
           "word_list", "write_synthetic_pages"]

PRODUCER = Producer(engine="biqe_lab-synthetic")
# The PAGE metadata dates of the ground truth: fixed, so that a seed always writes the same bytes.
GROUND_TRUTH_DATE = "2000-01-01T00:00:00+00:00"
DPI = (300, 300)
LINES_PER_PAGE = (8, 14)

def ground_truth_page(image_path: Path, lines: Sequence[RenderedLine]) -> Page:
    """The page of a saved synthetic image: one region around all lines, each line carrying its text."""
    stem = image_path.stem
    region = Region(id=f"{stem}_r1", polygon=hull(line.polygon for line in lines))
    return Page(
        id=stem, name=stem, image=probe_image(image_path)[0], regions=[region],
        lines=[Line(id=f"{stem}_l{number:02d}", baseline=line.baseline, polygon=line.polygon,
                    region_id=region.id,
                    variants=[TextVariant(text=line.text, origin="import", producer=PRODUCER)])
               for number, line in enumerate(lines, start=1)],
    )


def write_synthetic_pages(out_dir: Path, n_pages: int, seed: int = 0, languages: Sequence[str] = LANGUAGES,
                          text_source: str = "mixed", degradations: Optional[Degradations] = None,
                          dict_dir: Optional[Path] = None) -> list[Path]:
    """Write ``n_pages`` synthetic pages with their PAGE 2019 ground truth into ``out_dir``.

    The files are ``page_0001.png`` (300 dpi) and ``page_0001.xml``, and so on. Each page holds
    8-14 lines in one handwriting font: random word sequences from the Debian word lists of
    ``languages`` (one main language a page, now and then a line in another) and some of the
    built-in SENTENCES, as ``text_source`` says (see ``page_texts``); without the word lists,
    only SENTENCES. ``degradations`` bounds the scan-like degradations (see ``render_page``).
    ``seed`` fixes text, fonts and degradations, so the same seed writes the same files.
    Returns the image paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fonts = handwriting_fonts()
    rng = random.Random(seed)
    paths: list[Path] = []
    for number in range(1, n_pages + 1):
        page_rng = random.Random(rng.randrange(2**32))
        font = fonts[page_rng.randrange(len(fonts))]
        texts = page_texts(page_rng, page_rng.randint(*LINES_PER_PAGE), font, languages, text_source, dict_dir)
        render_seed = page_rng.randrange(2**32)
        image, lines = render_page(texts, seed=render_seed, fonts=[font], degradations=degradations)
        path = out_dir / f"page_{number:04d}.png"
        image.save(path, dpi=DPI)
        record = ProcessingRecord(step="synthetic", engine=PRODUCER.engine, started_at=GROUND_TRUTH_DATE,
                                  settings={"seed": seed, "page": number, "render_seed": render_seed,
                                            "font": font.name, "text_source": text_source,
                                            "languages": ",".join(languages)})
        document = Document(name="synthetic", created_at=GROUND_TRUTH_DATE, processing=[record])
        path.with_suffix(".xml").write_bytes(render_export(ground_truth_page(path, lines), "pagexml", document))
        paths.append(path)
    return paths
