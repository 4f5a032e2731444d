"""The correct-and-retrain loop: held-out pages of a model, the N least confident lines, training lines, a short fine-tune."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import InputError
from ..evaluation import normalize
from ..ingest import open_image
from ..model import Document
from ..model_registry import read_card, resolve_model
from ..training import split_of
from .overlay import crop_line

LINE_HEIGHT = 64  # the line sets' height (grey, polygon-masked), as the recognizer sees lines


def held_out_images(dataset_folder: Union[str, Path], model: str = "biqe-htr-default",
                    dataset: Optional[str] = None) -> list[Path]:
    """The page images of ``dataset_folder`` that the model's card lists as held out (never trained on)."""
    folder = Path(dataset_folder)
    path = Path(resolve_model(model))
    card = read_card(path)
    held = (card.get("training") or {}).get("held_out") or {}
    names = [dataset] if dataset else [n for n in held if n in folder.parts]
    found = [folder / rel for n in names for rel in held.get(n, []) if (folder / rel).is_file()]
    if not found:
        raise InputError(f"the card of {path.name} lists no held-out page under {folder}")
    return found


def _writers(count: int, folder: str, validation: int) -> list[str]:
    """``count`` writer names: the first ``validation`` in the validation split, the rest in train (none in test)."""
    want = ["validation"] * validation + ["train"] * (count - validation)
    out, i = [], 0
    for split in want:
        while split_of(f"{folder}/w{i}") != split:
            i += 1
        out.append(f"w{i}")
        i += 1
    return out


def write_training_lines(document: Document, line_ids: Sequence[str], folder: Union[str, Path],
                         validation: int = 2) -> Path:
    """The lines ``line_ids`` as a line set for ``biqe-lab train``: grey 64 px crops, ``.gt.txt`` with the standing
    (human) text, and a manifest.tsv whose writer names put ``validation`` of them in the validation split and the
    rest in train (the split is by writer; none falls into test)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = list(dict.fromkeys(line_ids))
    if len(wanted) <= validation:
        raise InputError(f"{len(wanted)} corrected lines are too few to train on (need more than {validation})")
    writers = _writers(len(wanted), folder.name, validation)
    images, rows = {}, ["image\ttext\twriter"]
    pages = {line.id: page for page in document.pages for line in page.lines}
    for n, (line_id, writer) in enumerate(zip(wanted, writers)):
        page = pages[line_id]
        line = next(l for l in page.lines if l.id == line_id)
        if page.name not in images:
            images[page.name] = open_image(page.image)
        text = normalize(line.text)
        name = f"line_{n:04d}"
        crop_line(page, line, images[page.name], height=LINE_HEIGHT, masked=True).save(folder / f"{name}.png")
        (folder / f"{name}.gt.txt").write_text(text + "\n", encoding="utf-8")
        rows.append(f"{name}.png\t{text}\t{writer}")
    (folder / "manifest.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def fine_tune(data: Union[str, Path], out: Union[str, Path], base_model: str = "biqe-htr-default", epochs: int = 2,
              threads: int = 2, log_to: Union[str, Path, None] = None) -> dict:
    """``biqe-lab train --data DATA --base-model BASE --epochs N --out OUT`` (a short run); what it said and took."""
    out = Path(out)
    command = [str(Path(sys.executable).with_name("biqe-lab")), "train", "--data", str(data), "--out", str(out),
               "--base-model", base_model, "--epochs", str(epochs), "--threads", str(threads), "--fresh",
               "--keep-charset"]  # a few lines: the data's characters alone would drop the rest of the model's
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = round(time.perf_counter() - t0, 1)
    if log_to is not None:
        Path(log_to).write_text(proc.stderr + proc.stdout, encoding="utf-8")
    if proc.returncode != 0 or not out.is_file():
        raise InputError(f"biqe-lab train failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return {"command": " ".join(command[1:]), "seconds": seconds, "summary": proc.stdout.strip(), "model": str(out)}
