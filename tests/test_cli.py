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
    out = run("process", src, "--out", tmp_path / "out")  # the defaults: the whole chain
    assert out.returncode == 0, out.stderr
    assert "pages" in out.stderr  # the progress bar
    assert "preset auto chose french_20c_notes" in out.stderr  # a French page, told by its words
    doc = Document.load(tmp_path / "out" / "document.json")
    page = doc.pages[0]
    assert len(page.lines) > 10 and page.ground_truth
    assert sum(bool(l.text) for l in page.lines) > len(page.lines) / 2
    assert [r.step for r in doc.processing] == ["layout", "recognition", "correction", "export"]
    assert doc.processing[-1].settings["pdf"] == "pdfa-2b" and (tmp_path / "out" / "pages.pdf").stat().st_size > 0
    assert f"pdf: {tmp_path / 'out' / 'pages.pdf'}" in out.stdout
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
              "--correction", "none", "--json", tmp_path / "scores.json", "--save-document", tmp_path / "doc.json", "-q")
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


def test_keep_going_records_the_failed_page_and_exits_11(tmp_path, sample_dir):
    for suffix in (".jpg", ".xml"):
        shutil.copy2(next(sample_dir.glob(f"*{suffix}")), tmp_path / f"good{suffix}")
    shutil.copy2(next(sample_dir.glob("*.jpg")), tmp_path / "lonely.jpg")  # no ground truth: its layout fails
    res = run("process", tmp_path, "--out", tmp_path / "o", "--layout", "ground-truth", "--steps", "layout,export",
              "--pdf", "none", "--keep-going", "-q")
    assert res.returncode == 11, res.stderr
    assert "error [pages_failed]: 1 of 2 pages failed" in res.stderr and "page lonely failed" in res.stderr
    doc = Document.load(tmp_path / "o" / "document.json")
    assert [bool(p.error) for p in doc.pages] == [False, True] and (tmp_path / "o" / "alto" / "good.xml").is_file()


def test_one_error_handler_for_every_command_group(tmp_path):
    """A BiqeError from a sub-group's command (no command has a handler of its own) gets its class's exit code."""
    import os

    env = {**os.environ, "BIQE_DATA_DIR": str(tmp_path / "data")}
    res = subprocess.run([str(BIN), "keys", "revoke", "no-such-key"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error [invalid_input]: no API key"), res.stderr
    import biqe_lab.cli as cli

    assert not hasattr(cli, "translate_errors")


def test_every_error_class_lives_in_errors_with_its_codes():
    import importlib
    import pkgutil

    import biqe_lab
    from biqe_lab import errors

    for info in pkgutil.walk_packages(biqe_lab.__path__, "biqe_lab."):
        if not any(part in info.name for part in ("migrations", "celery_worker", "ppocrv6", "finetune")):
            importlib.import_module(info.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    found = list(subclasses(errors.BiqeError))
    assert len(found) >= 24
    assert {c.__module__ for c in found} == {"biqe_lab.errors"}, {c.__name__: c.__module__ for c in found}
    codes = [c.code for c in found]
    assert len(set(codes)) == len(codes)
    assert all(c.exit_code not in (0, 1) and 400 <= c.http_status < 600 for c in found)
    assert {c.exit_code for c in found} >= set(range(2, 14)) | {130}  # every exit code the help lists has its class


def test_every_readme_command_parses_as_written(tmp_path, monkeypatch):
    """Each `biqe-lab ...` line of the README's code blocks names a command and options that exist."""
    import re
    import shlex

    import click

    from biqe_lab.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    commands = []
    for line in readme.splitlines():
        for part in line.split(";"):
            m = re.search(r"(?:\.venv/bin/|^\w+:\s+)biqe-lab (.*)", part.strip())
            if m:
                commands.append(shlex.split(m.group(1).split("  #")[0].split(" # ")[0]))
    assert len(commands) >= 15
    for folder in ("gt_dir", "scans", "my_pages"):
        (tmp_path / folder).mkdir()
    (tmp_path / "pages.zip").write_bytes(b"")
    (tmp_path / "grid.yaml").write_text("{}")
    (tmp_path / "notebooks" / "batch").mkdir(parents=True)
    (tmp_path / "notebooks" / "batch" / "run_dataset.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path)
    for args in commands:
        args = [a for a in args if a not in ("[--account", "acme]")]
        ctx, command = None, main
        try:
            while isinstance(command, click.Group):
                name, command, args = command.resolve_command(ctx or main.make_context("biqe-lab", list(args),
                                                                                    resilient_parsing=True), args)
                ctx = click.Context(command, info_name=name, parent=ctx)
            command.make_context(name, list(args), parent=ctx)
        except click.UsageError as exc:
            pytest.fail(f"README: biqe-lab {' '.join(args)}: {exc}")
