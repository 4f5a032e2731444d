"""The CLI end to end on real pages, its exit codes per error class, and evaluate's JSON."""
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jiwer
import pytest
from lxml import etree

from biqe_lab import Document
from biqe_lab.evaluation import normalize


BIN = Path(sys.executable).parent / "biqe-lab"


def run(*args, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=900)


def test_help_is_there_for_newcomers():
    out = run("--help")
    assert out.returncode == 0 and "process" in out.stdout and "Exit codes" in out.stdout
    text = " ".join(run("process", "--help").stdout.split())
    assert "--layout" in text and "--engine" in text and "read as its ground truth" in text


@pytest.mark.slow
def test_process_zip_end_to_end_with_kraken_layout(tmp_path, sample_dir, schemas):
    """A ZIP of one real page through kraken layout + tesseract to valid PAGE and ALTO."""
    src = tmp_path / "pages.zip"
    with zipfile.ZipFile(src, "w") as z:
        for f in sample_dir.iterdir():
            z.write(f, f"scans/{f.name}")
    out = run("process", src, "--out", tmp_path / "out", "--lang", "fra")
    assert out.returncode == 0, out.stderr
    assert "pages" in out.stderr  # the progress bar
    doc = Document.load(tmp_path / "out" / "document.json")
    page = doc.pages[0]
    assert len(page.lines) > 10 and page.ground_truth
    assert sum(bool(l.text) for l in page.lines) > len(page.lines) / 2
    assert [r.step for r in doc.processing] == ["layout", "recognition", "export"]
    for sub, xsd in (("page", "pagecontent-2019-07-15.xsd"), ("alto", "alto-4-4.xsd")):
        xml = tmp_path / "out" / sub / f"{page.name}.xml"
        schema = etree.XMLSchema(etree.parse(str(schemas / xsd)))
        assert schema.validate(etree.parse(str(xml))), schema.error_log


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@pytest.mark.slow
def test_evaluate_json_matches_an_independent_computation(tmp_path, sample_dir):
    out = run("evaluate", sample_dir, "--layout", "ground-truth", "--engine", "tesseract", "--lang", "fra",
              "--json", tmp_path / "scores.json", "--save-document", tmp_path / "doc.json", "-q")
    assert out.returncode == 0, out.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert set(scores) == {"pages", "lines", "unreferenced_lines", "ref_chars", "normalization", "htr", "per_page"}
    doc = Document.load(tmp_path / "doc.json")
    pairs = [(normalize(l.reference), normalize(l.variant("htr").text)) for l in doc.pages[0].lines]
    errors = sum(_levenshtein(r, h) for r, h in pairs)
    ref_chars = sum(len(r) for r, _ in pairs)
    assert scores["ref_chars"] == ref_chars and scores["lines"] == len(pairs)
    assert scores["htr"]["cer"] == pytest.approx(errors / ref_chars)
    assert scores["per_page"][0]["htr_cer"] == pytest.approx(errors / ref_chars)
    assert scores["htr"]["wer"] == pytest.approx(jiwer.wer([r for r, _ in pairs if r], [h for r, h in pairs if r]))
    assert "CER" in out.stdout and "NFC" in out.stdout


def test_exit_codes_per_error_class(tmp_path):
    gt = ("--layout", "ground-truth")  # no segmentation model to load: these fail on input
    assert run("process", tmp_path / "missing.zip", "--out", tmp_path / "o", *gt).returncode == 2
    (tmp_path / "empty").mkdir()
    res = run("process", tmp_path / "empty", "--out", tmp_path / "o", *gt)
    assert res.returncode == 4 and "no page image" in res.stderr
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../evil.png", b"x")
    res = run("process", tmp_path / "evil.zip", "--out", tmp_path / "o", *gt)
    assert res.returncode == 3 and "outside the archive" in res.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "page1.jpg").write_bytes(b"\xff\xd8garbage")
    res = run("process", tmp_path / "bad", "--out", tmp_path / "o", *gt)
    assert res.returncode == 5 and "page1.jpg" in res.stderr
    res = run("process", tmp_path / "bad", "--out", tmp_path / "o", "--engine", "kraken",
              "--model", tmp_path / "missing.mlmodel")
    assert res.returncode == 7 and "missing.mlmodel" in res.stderr
    assert not (tmp_path / "o" / "document.json").exists()
    res = run("train", "--data", tmp_path / "bad", "--out", tmp_path / "m.safetensors", "--base-model", "no-such-model")
    assert res.returncode == 2 and "no-such-model" in res.stderr


def test_ground_truth_layout_without_xml_is_refused(tmp_path, sample_dir):
    shutil.copy2(next(sample_dir.glob("*.jpg")), tmp_path / "lonely.jpg")
    res = run("process", tmp_path / "lonely.jpg", "--out", tmp_path / "o", "--layout", "ground-truth", "-q")
    assert res.returncode == 2 and "no ground-truth XML" in res.stderr
