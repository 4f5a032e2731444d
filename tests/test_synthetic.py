"""Synthetic handwriting pages: deterministic per seed, and their PAGE ground truth reads back."""
from biqe_lab import ingest
from biqe_lab.synthetic import handwriting_fonts, write_synthetic_pages


def test_synthetic_pages_are_reproducible_and_read_back(tmp_path):
    assert handwriting_fonts()
    a = write_synthetic_pages(tmp_path / "a", 2, seed=3)
    b = write_synthetic_pages(tmp_path / "b", 2, seed=3)
    c = write_synthetic_pages(tmp_path / "c", 1, seed=4)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()
    doc = ingest(tmp_path / "a")
    assert len(doc.pages) == 2
    for page in doc.pages:
        assert 8 <= len(page.lines) <= 14
        assert all(line.reference and len(line.reference) > 20 for line in page.lines)
        assert all(0 <= x < page.image.width and 0 <= y < page.image.height
                   for line in page.lines for x, y in line.polygon)
