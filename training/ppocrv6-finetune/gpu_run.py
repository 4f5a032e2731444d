"""The ppocrv6 fine-tune on a lent CUDA GPU: `prepare` packs what travels (here), `train` runs there.

What travels must fit the device tool's 64 MiB with the working tree, so `prepare` re-encodes the
run's compiled lines (the arrow files in data/, 430 MB of full-resolution crops) at the network's
own input height (48 px) as WebP (quality 80), in arrow files of the same schema and metadata that
`biqe_lab.finetune` reads unchanged. `train` sizes the run to the time it is given: a short probe
measures lines per second, then the fine-tune runs as many whole epochs of its cosine schedule as
fit, from the bundled biqe-htr-default weights (PP-OCRv6), and writes `checkpoint.pt`, `best.safetensors` and
`history.jsonl` to $OUT. Nothing in the project depends on this file.
"""
from __future__ import annotations

import io
import math
import os
import re
import sys
import time
from pathlib import Path

RUN = Path("training/ppocrv6-finetune")
GPU = Path(".gpu")
SETS = ("train_pages", "train_lines", "validation_pages", "validation_lines")
HEIGHT = 48  # PP-OCRv6's input height: the dataset's own resize becomes a no-op
QUALITY = 80


def prepare() -> None:
    import pyarrow as pa
    from PIL import Image

    (GPU / "lines").mkdir(parents=True, exist_ok=True)
    for name in SETS:
        with pa.memory_map(str(RUN / "data" / f"{name}.arrow"), "rb") as f:
            table = pa.ipc.open_file(f).read_all()
        rows = table.column("lines").to_pylist()
        for row in rows:
            im = Image.open(io.BytesIO(row["im"]))
            im = im.resize((max(1, round(im.width * HEIGHT / im.height)), HEIGHT), Image.LANCZOS)
            out = io.BytesIO()
            im.save(out, format="WEBP", quality=QUALITY, method=6)
            row["im"] = out.getvalue()
        lines = pa.array(rows, type=table.schema.field("lines").type)
        small = table.set_column(table.schema.get_field_index("lines"), "lines", lines)
        target = GPU / "lines" / f"{name}.arrow"
        with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, small.schema) as writer:
            writer.write_table(small)
        print(f"{name}: {len(rows)} lines, {target.stat().st_size / 1e6:.1f} MB")


def _rows(arrow: Path) -> int:
    import pyarrow as pa

    with pa.memory_map(str(arrow), "rb") as f:
        return pa.ipc.open_file(f).read_all().num_rows


def train(seconds: float) -> None:
    """Fine-tune for at most ``seconds`` of wall time from now, whole epochs of one cosine schedule."""
    import torch

    from biqe_lab.finetune import FineTuneRun, fine_tune

    started = time.time()
    device = os.environ.get("DEVICE", "cuda:0")  # DEVICE=cpu: the same flow here, as a dry run
    workers = 12 if device.startswith("cuda") else 1
    out = Path(os.environ.get("OUT", "/tmp/out"))
    lines = GPU / "lines"
    common = dict(base_model=GPU / "base.safetensors", train=[lines / "train_pages.arrow", lines / "train_lines.arrow"],
                  validation=[lines / "validation_pages.arrow", lines / "validation_lines.arrow"],
                  lrate=1e-4, warmup=200, final_lrate=1e-5, batch_size=16, device=device, workers=workers, threads=4)
    print(torch.__version__, torch.cuda.get_device_name(0) if device.startswith("cuda") else device, flush=True)

    rates: list[float] = []

    def probe_log(msg: str) -> None:
        print("probe:", msg, flush=True)
        m = re.search(r"([\d.]+) lines/s", msg)
        if m:
            rates.append(float(m.group(1)))

    fine_tune(FineTuneRun(output=Path("/tmp/probe"), epochs=1, max_seconds=30, **common), log=probe_log)
    rate = rates[-1] if rates else 50.0
    n_train = sum(_rows(path) for path in common["train"])
    epoch_s = n_train / rate * 1.1 + 6  # + validation
    left = seconds - (time.time() - started) - 30  # the last save and the copy
    epochs = max(1, math.floor(left / epoch_s))
    print(f"{rate:.0f} lines/s: about {epoch_s:.0f} s an epoch; {epochs} epochs in {left:.0f} s", flush=True)
    run = FineTuneRun(output=Path("/tmp/run"), epochs=epochs, max_seconds=left, **common)
    print(fine_tune(run, log=lambda m: print(m, flush=True)), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.pt", "best.safetensors", "history.jsonl", "run.json"):
        (out / name).write_bytes((run.output / name).read_bytes())
    print(f"done in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare()
    else:
        train(float(sys.argv[2]))
