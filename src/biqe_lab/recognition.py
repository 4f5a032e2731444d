"""The recognition step: engines that read each line of a page (kraken models, tesseract), loaded once."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Protocol, Sequence

from PIL import Image, ImageDraw

from .errors import DependencyMissingError, EngineError, InputError, ModelError
from .kraken_support import kraken_device, kraken_version
from .model import Line, Page, Producer, TextVariant
from .model_registry import read_card
from .posteriors import LinePosteriors


class Recognizer(Protocol):
    """A recognition back-end: appends one ``htr`` variant to every line of a page."""

    name: str

    def describe(self) -> dict: ...

    def recognize(self, page: Page, image: Image.Image) -> None: ...


def line_image(image: Image.Image, line: Line, pad: int = 4) -> Image.Image:
    """The line's pixels: its polygon's bounding box, with everything outside the polygon white."""
    x0, y0, x1, y1 = line.bbox
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(image.width, x1 + pad + 1), min(image.height, y1 + pad + 1)
    grey = image.convert("L")
    crop = grey.crop((x0, y0, x1, y1))
    mask = Image.new("L", crop.size, 0)
    ImageDraw.Draw(mask).polygon([(x - x0, y - y0) for x, y in line.polygon], fill=255)
    out = Image.new("L", crop.size, 255)
    out.paste(crop, (0, 0), mask)
    return out


class KrakenRecognizer:
    """Any kraken recognition model (``.mlmodel`` or ``.safetensors``); per-character confidences."""

    name = "kraken"

    def __init__(self, model: str | Path, device: str = "cpu", batch_size: int = 8,
                 keep_posteriors: bool = False) -> None:
        """``keep_posteriors``: attach each line's CTC posteriors to its variant (in memory) for correction."""
        from kraken.configs import RecognitionInferenceConfig
        from kraken.tasks import RecognitionTaskModel

        self.model_path = Path(model)
        if not self.model_path.is_file():
            raise ModelError(f"recognition model {self.model_path} does not exist")
        try:
            self._task = RecognitionTaskModel.load_model(self.model_path)
        except (ValueError, RuntimeError, OSError, KeyError) as exc:
            raise ModelError(f"{self.model_path.name} is not a kraken recognition model: {exc}") from exc
        if read_card(self.model_path).get("port", {}).get("input") == "paddle":
            from .ppocrv6 import use_paddle_input

            use_paddle_input(self._task.net.nn)  # a zero-shot port reads exactly what its original reads
        self.keep_posteriors = keep_posteriors
        codec = self._task.net.codec if keep_posteriors else None
        self._labels = {c: ls[0] for c, ls in codec.c2l.items() if len(c) == 1 and len(ls) == 1} if codec else {}
        self._config = RecognitionInferenceConfig(batch_size=batch_size, return_logits=keep_posteriors,
                                                  **kraken_device(device))
        self._producer = Producer(engine="kraken", model=self.model_path.name, version=kraken_version())

    def describe(self) -> dict:
        return {"engine": "kraken", "version": self._producer.version,
                "settings": {"model": self.model_path.name, "batch_size": self._config.batch_size}}

    def recognize(self, page: Page, image: Image.Image) -> None:
        from kraken.containers import BaselineLine, Segmentation

        if not page.lines:
            return
        klines = [BaselineLine(id=l.id, baseline=[(int(x), int(y)) for x, y in l.baseline],
                               boundary=[(int(x), int(y)) for x, y in l.polygon]) for l in page.lines]
        seg = Segmentation(type="baselines", imagename=page.image.path, text_direction="horizontal-lr",
                           script_detection=False, lines=klines, regions={}, line_orders=[])
        try:
            records = list(self._task.predict(image, seg, self._config))
        except Exception as exc:  # torch/kraken errors of many kinds; name the page
            raise EngineError(f"kraken recognition failed on page {page.name}: {exc}", page=page.name) from exc
        for line, rec in zip(page.lines, records):
            chars = [float(c) for c in rec.confidences]
            text = rec.prediction
            if len(chars) != len(text):  # multi-codepoint labels: keep only the line figure
                chars = None
            conf = (sum(rec.confidences) / len(rec.confidences)) if rec.confidences else None
            variant = line.add_variant(TextVariant(text=text, origin="htr", producer=self._producer,
                                                   confidence=None if conf is None else min(max(float(conf), 0.0), 1.0),
                                                   char_confidences=chars))
            if self.keep_posteriors and rec.logits is not None:
                variant.keep_posteriors(self._posteriors(text, rec.logits))

    def _posteriors(self, text: str, probs) -> Optional[LinePosteriors]:
        """The line's softmax outputs with the frames of each character, as kraken's own decoder finds them."""
        from kraken.lib.ctc_decoder import greedy_decoder

        decoded = self._task.net.codec.decode(greedy_decoder(probs)[0])
        return LinePosteriors.from_decoding(text, probs.float().numpy(), [(c, s, e) for c, s, e, _ in decoded],
                                            self._labels)


class TesseractRecognizer:
    """Tesseract (Debian ``tesseract-ocr``) on the same line crops; one process per page, line confidences."""

    name = "tesseract"

    def __init__(self, languages: Sequence[str] = ("eng",), psm: int = 7, binary: Optional[str] = None) -> None:
        self.binary = binary or shutil.which("tesseract")
        if not self.binary:
            raise DependencyMissingError(
                "tesseract is not installed; install it (apt-get install tesseract-ocr) or choose --engine kraken")
        self.languages = list(languages)
        available = self.available_languages()
        missing = [l for l in self.languages if l not in available]
        if missing:
            raise InputError(f"tesseract has no language data for {', '.join(missing)} "
                             f"(installed: {', '.join(sorted(available))})")
        self.psm = psm
        self._producer = Producer(engine="tesseract", model="+".join(self.languages), version=self.version())

    def available_languages(self) -> set[str]:
        out = subprocess.run([self.binary, "--list-langs"], capture_output=True, text=True, check=False)
        return {l.strip() for l in out.stdout.splitlines()[1:] if l.strip()}

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).splitlines()
        return first[0].split()[-1] if first else "unknown"

    def describe(self) -> dict:
        return {"engine": "tesseract", "version": self._producer.version,
                "settings": {"languages": self.languages, "psm": self.psm}}

    def recognize(self, page: Page, image: Image.Image) -> None:
        if not page.lines:
            return
        with tempfile.TemporaryDirectory(prefix="biqe_tess_") as tmp:
            tmpdir = Path(tmp)
            paths = []
            for i, line in enumerate(page.lines):
                p = tmpdir / f"line_{i:05d}.png"
                line_image(image, line, pad=8).save(p, dpi=(300, 300))
                paths.append(str(p))
            listing = tmpdir / "lines.txt"
            listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
            cmd = [self.binary, str(listing), str(tmpdir / "out"), "--psm", str(self.psm),
                   "-l", "+".join(self.languages), "tsv"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            tsv = tmpdir / "out.tsv"
            if proc.returncode != 0 or not tsv.exists():
                raise EngineError(f"tesseract failed on page {page.name}: {proc.stderr.strip()[-500:]}",
                                  page=page.name)
            results = parse_tesseract_tsv(tsv.read_text(encoding="utf-8"), len(page.lines))
        for line, (text, conf) in zip(page.lines, results):
            line.add_variant(TextVariant(text=text, origin="htr", producer=self._producer, confidence=conf))


class TrocrRecognizer:
    """A TrOCR model (transformers ``VisionEncoderDecoderModel`` + processor), batched over line crops.

    ``model`` is a local folder (``save_pretrained`` output) or a model-hub id, which only
    resolves where the hub can be reached. Line confidence is the mean probability of the
    generated tokens; TrOCR's tokens are not characters, so there are no per-character values.
    """

    name = "trocr"

    def __init__(self, model: str | Path, device: str = "cpu", batch_size: int = 8, max_new_tokens: int = 128) -> None:
        try:
            from transformers import AutoProcessor, VisionEncoderDecoderModel
        except ImportError as exc:  # pragma: no cover - transformers is a declared dependency
            raise DependencyMissingError("the trocr engine needs transformers") from exc
        self.model_ref = str(model)
        local = Path(model).is_dir()
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_ref, local_files_only=local)
            self.model = VisionEncoderDecoderModel.from_pretrained(self.model_ref, local_files_only=local)
        except (OSError, ValueError, KeyError) as exc:
            where = "folder" if local else "model id (no model hub is reachable offline)"
            raise ModelError(f"cannot load TrOCR model from {where} {self.model_ref}: {exc}") from exc
        self.device = "cuda" if device.startswith("cuda") else "cpu"
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        import transformers

        self._producer = Producer(engine="trocr", model=Path(self.model_ref).name if local else self.model_ref,
                                  version=transformers.__version__)

    def describe(self) -> dict:
        return {"engine": "trocr", "version": self._producer.version,
                "settings": {"model": self._producer.model, "batch_size": self.batch_size,
                             "max_new_tokens": self.max_new_tokens}}

    def recognize(self, page: Page, image: Image.Image) -> None:
        import torch

        for start in range(0, len(page.lines), self.batch_size):
            batch = page.lines[start:start + self.batch_size]
            crops = [line_image(image, line).convert("RGB") for line in batch]
            try:
                pixels = self.processor(images=crops, return_tensors="pt").pixel_values.to(self.device)
                with torch.inference_mode():
                    out = self.model.generate(pixels, max_new_tokens=self.max_new_tokens, num_beams=1,
                                              output_scores=True, return_dict_in_generate=True)
                    scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            except Exception as exc:  # torch/transformers errors of many kinds; name the page
                raise EngineError(f"TrOCR failed on page {page.name}: {exc}", page=page.name) from exc
            texts = self.processor.batch_decode(out.sequences, skip_special_tokens=True)
            generated = out.sequences[:, 1:]  # scores exist for the generated tokens, not the start token
            pad = self.model.generation_config.pad_token_id
            for line, text, seq_scores, tokens in zip(batch, texts, scores, generated):
                keep = tokens != pad if pad is not None else torch.ones_like(tokens, dtype=torch.bool)
                probs = seq_scores[keep[: seq_scores.shape[0]]].exp()
                conf = float(probs.mean()) if probs.numel() else None
                line.add_variant(TextVariant(text=text.strip(), origin="htr", producer=self._producer,
                                             confidence=None if conf is None else min(max(conf, 0.0), 1.0)))


def parse_tesseract_tsv(tsv: str, n_images: int) -> list[tuple[str, Optional[float]]]:
    """Text and mean word confidence (0..1) per input image of a multi-image tesseract TSV."""
    words: dict[int, list[tuple[tuple[int, int, int, int], str, float]]] = {i: [] for i in range(1, n_images + 1)}
    reader = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in reader:
        if row.get("level") != "5":
            continue
        text = (row.get("text") or "").strip()
        if not text:
            continue
        page = int(row["page_num"])
        key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]), int(row["word_num"]))
        words.setdefault(page, []).append((key, text, float(row["conf"])))
    out = []
    for i in range(1, n_images + 1):
        ws = sorted(words.get(i, []))
        confs = [c for _, _, c in ws if c >= 0]
        out.append((" ".join(t for _, t, _ in ws), (sum(confs) / len(confs) / 100.0) if confs else None))
    return out


def make_recognizer(engine: str, model: Optional[str | Path] = None, languages: Sequence[str] = ("eng",),
                    device: str = "cpu", batch_size: int = 8, keep_posteriors: bool = False) -> Recognizer:
    """The recognition engine chosen by configuration (``keep_posteriors``: kraken's, for the correction step)."""
    if engine == "kraken":
        if model is None:
            raise InputError("--engine kraken needs --model PATH (a .mlmodel or .safetensors recognition model)")
        return KrakenRecognizer(model, device=device, batch_size=batch_size, keep_posteriors=keep_posteriors)
    if engine == "tesseract":
        return TesseractRecognizer(languages)
    if engine == "trocr":
        if model is None:
            raise InputError("--engine trocr needs --model DIR_OR_ID (a TrOCR model folder or model-hub id)")
        return TrocrRecognizer(model, device=device, batch_size=batch_size)
    raise InputError(f"unknown recognition engine {engine!r}; choose 'kraken', 'tesseract' or 'trocr'")
