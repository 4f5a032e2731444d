"""Shared fixtures: real pages from ../shared/datasets, one kraken segmentation, one tiny kraken model."""
from __future__ import annotations

import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


@pytest.fixture(scope="session")
def tiny_trocr_model(tmp_path_factory) -> Path:
    """A tiny TrOCR model and processor built from configs (no download): the trocr engine's plumbing."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, TrOCRConfig, TrOCRProcessor, ViTConfig, ViTImageProcessor,
                              VisionEncoderDecoderConfig, VisionEncoderDecoderModel)

    torch.manual_seed(0)
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + list("abcdefghijklmnopqrstuvwxyz ."))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>")
    encoder = ViTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    decoder = TrOCRConfig(vocab_size=len(vocab), d_model=32, decoder_layers=1, decoder_attention_heads=2,
                          decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                          eos_token_id=2, decoder_start_token_id=1)
    model = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))
    model.config.decoder_start_token_id, model.config.pad_token_id, model.config.eos_token_id = 1, 0, 2
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 2
    out = tmp_path_factory.mktemp("trocr")
    model.save_pretrained(out)
    TrOCRProcessor(image_processor=ViTImageProcessor(size={"height": 32, "width": 32}),
                   tokenizer=tokenizer).save_pretrained(out)
    return out


class WebhookReceiver:
    """A loopback webhook receiver: answers ``fail_status`` to the first ``failures`` requests, then 200.

    ``requests`` holds (monotonic time, headers, raw body) per request received.
    """

    def __init__(self, failures: int = 0, fail_status: int = 500) -> None:
        self.failures, self.requests = failures, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((time.monotonic(), dict(self.headers), body))
                self.send_response(fail_status if len(receiver.requests) <= receiver.failures else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def claim_concurrently(store, workers: int = 4) -> list[str]:
    """Claim every queued job from ``workers`` threads at once; the ids claimed, in claim order."""
    import threading

    claimed: list[str] = []

    def claim_all(name: str) -> None:
        while (job := store.claim(name)) is not None:
            claimed.append(job["id"])

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return claimed
