"""Shared fixtures: real pages from ../shared/datasets, one kraken segmentation, one tiny kraken model."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
SCHEMAS = SHARED / "schemas"
PERAIRE = DATASETS / "peraire" / "train"
SAMPLE_PAGE = "B.10.chine2_0020"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    return path


@pytest.fixture(scope="session")
def datasets() -> Path:
    return _need(DATASETS)


@pytest.fixture(scope="session")
def schemas() -> Path:
    return _need(SCHEMAS)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """One real peraire page (image + ALTO ground truth) in a folder of its own."""
    src = _need(PERAIRE)
    dest = tmp_path_factory.mktemp("sample")
    for suffix in (".jpg", ".xml"):
        shutil.copy2(src / f"{SAMPLE_PAGE}{suffix}", dest / f"{SAMPLE_PAGE}{suffix}")
    return dest


@pytest.fixture(scope="session")
def sample_document(sample_dir):
    from biqe_lab import ingest

    return ingest(sample_dir)


@pytest.fixture(scope="session")
def kraken_layout():
    from biqe_lab.layout import KrakenLayout

    return KrakenLayout()


@pytest.fixture(scope="session")
def segmented_page(kraken_layout, sample_document):
    """The sample page segmented by kraken once for the whole session (reference lines kept apart)."""
    from biqe_lab.ingest import open_image

    page = sample_document.pages[0].model_copy(deep=True)
    reference = list(page.lines)
    kraken_layout.segment(page, open_image(page.image))
    return page, reference


@pytest.fixture(scope="session")
def tiny_kraken_model(tmp_path_factory) -> Path:
    """A small, randomly initialised kraken recognition model: exercises the kraken engine's plumbing.

    It reads nothing meaningful; the shipped trained model is tested where it lands.
    """
    from biqe_lab.kraken_support import untrained_recognition_model

    charset = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZéèàç.,'"
    return untrained_recognition_model(tmp_path_factory.mktemp("models") / "tiny.mlmodel", charset)
