"""Fine-tuning kraken's PP-OCRv6 network with a plain CTC loop: codec resize, frozen statistics, resumable runs."""
from __future__ import annotations

import ctypes
import functools
import json
import math
import random
import time
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import InputError, ModelError

CHECKPOINT = "checkpoint.pt"  # the run's one resumable checkpoint
BEST = "best.safetensors"  # the best model so far by validation CER, a kraken model file
HISTORY = "history.jsonl"  # one record per validation
WIDTH_STEP = 64  # training batches are padded to a multiple of this many pixels
TRIM_EVERY = 5  # steps between returning freed heap pages to the system (``_release_freed_memory``)


@dataclass
class FineTuneRun:
    """One fine-tune of a PP-OCRv6 model on precompiled line datasets (kraken arrow files).

    Why a plain loop and not kraken's ppocrv6 trainer: that trainer pads every batch to
    ``max_width``, trains an auxiliary NRTR decoder beside CTC and compiles the step, which on
    two CPU cores costs far more per line than this loop (``benchmarks/bench_training.py``).
    BatchNorm statistics stay frozen: the port stores folded BatchNorms as identity-with-bias,
    and small CPU batches would give noisy batch statistics anyway.
    """

    base_model: Path
    train: list[Path]
    validation: list[Path]
    output: Path
    epochs: int = 10
    lrate: float = 1e-4
    warmup: int = 200  # linear warm-up steps, at most a tenth of the run (``learning_rate``)
    final_lrate: Optional[float] = None  # cosine decay from ``lrate`` to this at the last step (None: constant)
    batch_size: int = 16
    max_width: int = 2000  # lines wider after height normalization are skipped
    augment: bool = True
    threads: int = 2
    freeze: tuple[str, ...] = ()  # parameter-name prefixes kept fixed (e.g. "backbone.conv1")
    validate_every: int = 0  # steps between validations inside an epoch (0: once per epoch)
    seed: int = 0
    device: str = "cpu"  # or "cuda:0": the same loop, the same checkpoint (saved for the CPU)
    workers: int = 0  # data-loading processes (line decoding and augmentation); 0: in the training process
    max_seconds: float = 0  # stop, checkpointed, after this long (0: no limit)
    keep_charset: bool = False  # keep every character the base reads (kraken's `union`): for a few corrected lines

    def to_json(self) -> dict:
        out = asdict(self)
        out.update(base_model=str(self.base_model), output=str(self.output),
                   train=[str(p) for p in self.train], validation=[str(p) for p in self.validation])
        return out


def resized_codec(model, alphabet: Sequence[str], keep: bool = False):
    """kraken's ``new`` resize: keep the rows of the characters the data uses that the base knows,
    drop the others, add rows for characters the base lacks; with ``keep``, kraken's ``union``: drop
    nothing. Returns (codec, rows deleted, added).
    """
    from kraken.lib.codec import PytorchCodec

    wanted = sorted({unicodedata.normalize("NFC", c) for c in alphabet if c}
                    | ({c for c in model.codec.c2l if len(c) == 1} if keep else set()))
    known = model.codec.c2l
    kept = [c for c in wanted if c in known]
    added = [c for c in wanted if c not in known]
    kept_labels = {known[c][0] for c in kept}
    deleted = sorted(l[0] for c, l in known.items() if l[0] not in kept_labels)
    # rows kept keep their relative order; new rows follow
    old_order = sorted(kept, key=lambda c: known[c][0])
    c2l = {c: [i] for i, c in enumerate(old_order + added, start=1)}
    return PytorchCodec(c2l), deleted, added


def apply_codec(model, codec, deleted: Sequence[int]) -> None:
    model.resize_output(len(codec.c2l) + 1, del_indices=set(deleted))
    model.add_codec(codec)


def learning_rate(step: int, total: int, lrate: float, warmup: int, final: Optional[float] = None) -> float:
    """The rate for 0-based ``step`` of a ``total``-step run: linear warm-up over ``min(warmup, total // 10)``
    steps (a short run on a few corrected lines must not spend itself warming up), then constant, or a
    cosine decay to ``final`` at the last step."""
    warm = max(1, min(warmup, total // 10)) if total > 0 else max(warmup, 1)
    if step < warm:
        return lrate * (step + 1) / warm
    if final is None or total <= warm:
        return lrate
    progress = min(1.0, (step - warm) / max(total - warm - 1, 1))
    return final + (lrate - final) * 0.5 * (1 + math.cos(math.pi * progress))


def _resident_gb() -> float:
    """This process's resident memory in GB (0 where /proc is not there): logged so growth shows."""
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1e6
    except OSError:
        pass
    return 0.0


def _release_freed_memory() -> None:
    """Give the pages glibc's allocator holds free back to the system (a no-op without glibc).

    Every batch has its own width, so the freed activation buffers of earlier batches fragment the
    heaps: without this the process grew to 10 GB within 150 steps (and once to 12 GB, OOM-killed).
    Forcing every allocation through mmap instead (MALLOC_MMAP_THRESHOLD_) bounds it too, but made
    each step 3x slower.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, looked up once (None where the C library is not glibc)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _datasets(files: Sequence[Path], height: int, augment: bool):
    from kraken.lib.dataset import ArrowIPCRecognitionDataset, ImageInputTransforms

    transforms = ImageInputTransforms(1, height, 0, 3, (16, 0), valid_norm=False)
    ds = ArrowIPCRecognitionDataset(normalization="NFC", whitespace_normalization=True, reorder=False,
                                    im_transforms=transforms, augmentation=augment)
    for f in files:
        ds.add(str(f))
    ds.rebuild_alphabet()  # the characters after NFC (the arrow files keep the transcriptions as written)
    if len(ds) == 0:
        raise InputError(f"no lines in {', '.join(map(str, files))}")
    return ds


def _batches(n: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _fitting(max_width: int):
    """A collate function that leaves out lines wider than ``max_width`` (None for an empty batch).

    Batches are padded to a multiple of ``WIDTH_STEP``, so that fewer distinct buffer sizes
    fragment the allocator's heaps (see ``_release_freed_memory``).
    """

    def collate(samples: list[dict]):
        kept = [s for s in samples if s["image"].shape[2] <= max_width]
        return _collate(kept, WIDTH_STEP) + (len(kept),) if kept else None

    return collate


def _collate(samples: list[dict], multiple: int = 1):
    """Stack a batch, padded on the right to the widest line rounded up to ``multiple`` pixels."""
    import torch
    import torch.nn.functional as F

    width = -(-max(s["image"].shape[2] for s in samples) // multiple) * multiple
    images = torch.stack([F.pad(s["image"], (0, width - s["image"].shape[2])) for s in samples])
    lens = torch.tensor([s["image"].shape[2] for s in samples])
    targets = torch.cat([s["target"] for s in samples])
    target_lens = torch.tensor([len(s["target"]) for s in samples])
    return images, lens, targets, target_lens


def _freeze_statistics(net) -> None:
    from torch import nn

    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.eval()


def character_error_rate(model, dataset, batch_size: int = 16, limit: Optional[int] = None) -> tuple[float, int]:
    """Greedy-decoded CER of ``model`` on a (non-augmented) dataset: (errors / reference chars, chars)."""
    import torch
    from rapidfuzz.distance import Levenshtein

    from .ppocrv6 import greedy_text

    model.nn.eval()
    errors = chars = 0
    n = len(dataset) if limit is None else min(limit, len(dataset))
    label = model.codec.l2c_single
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
            images, lens, _, _ = _collate(samples)
            device = next(model.nn.parameters()).device
            logits, olens = model.nn(images.to(device), lens.to(device))
            for s, row, olen in zip(samples, logits[:, :, 0, :].argmax(1), olens):
                truth = "".join(label.get(int(l), "") for l in s["target"])
                text = greedy_text(row[: int(olen)], lambda i: label.get(i, ""))
                errors += Levenshtein.distance(text, truth)
                chars += len(truth)
    return errors / max(chars, 1), chars


def is_ppocrv6(path: Path) -> bool:
    """Whether a kraken safetensors file holds a PP-OCRv6 network (read from its metadata, nothing built)."""
    if Path(path).suffix != ".safetensors":
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("kraken_meta", "{}"))
    except Exception:  # not a safetensors file: kraken's own loader will say so
        return False
    return any(m.get("_model") == "PPOCRv6Model" for m in meta.values())


def load_base(path: Path):
    from kraken.models import load_models

    try:
        models = load_models(path, tasks=["recognition"])
    except Exception as exc:  # kraken raises ValueError/KeyError/RuntimeError for foreign files
        raise ModelError(f"{path} is not a kraken recognition model: {exc}") from exc
    model = models[0]
    if type(model).__name__ != "PPOCRv6Model":
        raise ModelError(f"{path.name} is a {type(model).__name__}; this loop fine-tunes PP-OCRv6 models "
                         "(other kraken networks train with `biqe-lab train`)")
    return model


def fine_tune(run: FineTuneRun, log: Callable[[str], None] = print) -> dict:
    """Train, validating after every epoch (and every ``validate_every`` steps); resume from the checkpoint.

    Writes ``checkpoint.pt`` (model, optimizer, step, epoch, best CER: the one resumable state),
    ``best.safetensors`` whenever validation CER improves, and ``history.jsonl``.
    """
    import torch
    import torch.nn.functional as F
    from kraken.models.writers import write_safetensors

    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    run.output.mkdir(parents=True, exist_ok=True)
    (run.output / "run.json").write_text(json.dumps(run.to_json(), indent=1), encoding="utf-8")
    device = torch.device(run.device)
    model = load_base(run.base_model)
    model.user_metadata.pop("port", None)
    height = model.input[2]
    train = _datasets(run.train, height, run.augment)
    val = _datasets(run.validation, height, False)
    alphabet = set(train.alphabet) | set(val.alphabet)
    ckpt_path = run.output / CHECKPOINT
    state = torch.load(ckpt_path, weights_only=False, map_location="cpu") if ckpt_path.is_file() else None
    if state is None:
        codec, deleted, added = resized_codec(model, alphabet, keep=run.keep_charset)
        apply_codec(model, codec, deleted)
        log(f"codec: {len(codec.c2l)} characters ({len(added)} new: {''.join(added)}), "
            f"{len(deleted)} base rows dropped")
    else:
        codec = _restore(model, state)
    train.encode(codec)
    val.encode(codec)
    net = model.nn.to(device)
    for name, p in net.named_parameters():
        p.requires_grad_(not any(name.startswith(f) for f in run.freeze))
    params = [p for p in net.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=run.lrate, weight_decay=0.01)
    step, epoch, best = 0, 0, math.inf
    if state is not None:
        optim.load_state_dict(state["optim"])  # moves its tensors to the parameters' device
        step, epoch, best = state["step"], state["epoch"], state["best"]
        log(f"resuming at epoch {epoch + 1}, step {step} (best validation CER {best:.2%})")
    else:
        cer0, chars = character_error_rate(model, val, run.batch_size)
        best = cer0
        _record(run, {"epoch": 0, "step": 0, "val_cer": cer0, "val_chars": chars, "seconds": 0.0})
        log(f"before fine-tuning: validation CER {cer0:.2%} on {chars} characters")
        _save_best(model, run.output, write_safetensors)

    def save(next_epoch: int, step_in_epoch: int = 0) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        on_cpu = lambda sd: {k: v.cpu() if torch.is_tensor(v) else v for k, v in sd.items()}  # noqa: E731
        optimizer = optim.state_dict()
        optimizer["state"] = {k: on_cpu(v) for k, v in optimizer["state"].items()}
        torch.save({"net": on_cpu(net.state_dict()), "optim": optimizer, "step": step, "epoch": next_epoch,
                    "step_in_epoch": step_in_epoch, "best": best, "codec": model.codec.c2l}, tmp)
        tmp.replace(ckpt_path)

    def validate(label: str, started: float) -> None:
        nonlocal best
        cer, chars = character_error_rate(model, val, run.batch_size)
        improved = cer < best
        if improved:
            best = cer
            _save_best(model, run.output, write_safetensors)
        _record(run, {"epoch": epoch + 1, "end_of_epoch": label == "epoch", "step": step, "val_cer": cer,
                      "val_chars": chars, "train_loss": sum(losses) / max(len(losses), 1),
                      "seconds": time.time() - started})
        log(f"{label} {epoch + 1} step {step}: validation CER {cer:.2%}{' (best)' if improved else ''}")

    from torch.utils.data import DataLoader

    run_started = time.time()
    out_of_time = False
    while epoch < run.epochs and not out_of_time:
        started = time.time()
        batches = _batches(len(train), run.batch_size, random.Random(f"{run.seed}-{epoch}"))
        total_steps = run.epochs * len(batches)
        skip = state["step_in_epoch"] if state is not None and state.get("step_in_epoch") else 0
        loader = DataLoader(train, batch_sampler=batches[skip:], collate_fn=_fitting(run.max_width),
                            num_workers=run.workers)
        net.train()
        _freeze_statistics(net)
        seen, losses = 0, []
        for b, batch in enumerate(loader, start=skip):
            if batch is None:
                continue
            images, lens, targets, target_lens, n = batch
            lr = learning_rate(step, total_steps, run.lrate, run.warmup, run.final_lrate)
            for g in optim.param_groups:
                g["lr"] = lr
            logits, olens = net(images.to(device), lens.to(device))
            logp = F.log_softmax(logits[:, :, 0, :], dim=1).permute(2, 0, 1)  # (T, N, C)
            loss = F.ctc_loss(logp.float(), targets.to(device), olens, target_lens.to(device), blank=0,
                              reduction="mean", zero_infinity=True)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optim.step()
            step += 1
            seen += n
            losses.append(loss.item())
            if step % TRIM_EVERY == 0:
                _release_freed_memory()
            if step % 20 == 0:
                rate = seen / max(time.time() - started, 1e-9)
                log(f"epoch {epoch + 1} batch {b + 1}/{len(batches)} loss {loss.item():.3f} lr {lr:.1e} "
                    f"{rate:.2f} lines/s {_resident_gb():.1f} GB")
            last = b + 1 == len(batches)  # the epoch's own validation follows: no mid-epoch one as well
            if run.validate_every and step % run.validate_every == 0 and not last:
                validate("mid-epoch", started)
                net.train()
                _freeze_statistics(net)
            if run.max_seconds and time.time() - run_started > run.max_seconds:
                save(epoch, b + 1)
                log(f"time budget of {run.max_seconds:.0f} s spent: checkpoint at epoch {epoch + 1}, "
                    f"batch {b + 1}; the same command resumes")
                out_of_time = True
                break
            if step % 50 == 0:
                save(epoch, b + 1)
        if out_of_time:
            break
        state = None
        validate("epoch", started)
        epoch += 1
        save(epoch)
        log(f"epoch {epoch}: {time.time() - started:.0f} s ({seen} lines)")
    return {"best_val_cer": best, "epochs": epoch, "steps": step}


def export_checkpoint(output: Path, base_model: Path, target: Path) -> Path:
    """The network of a run's ``checkpoint.pt`` (its latest step) as a kraken model file."""
    import torch
    from kraken.models.writers import write_safetensors

    state = torch.load(output / CHECKPOINT, weights_only=False, map_location="cpu")
    model = load_base(base_model)
    model.user_metadata.pop("port", None)
    _restore(model, state)
    target.unlink(missing_ok=True)
    write_safetensors([model], target)
    return target


def _restore(model, state: dict):
    """Give the base model the checkpoint's head size, codec and weights; returns the codec."""
    from kraken.lib.codec import PytorchCodec

    codec = PytorchCodec(state["codec"])
    model.resize_output(len(codec.c2l) + 1, del_indices=set(range(len(codec.c2l) + 1, model.num_classes)))
    model.add_codec(codec)
    model.nn.load_state_dict(state["net"])
    return codec


def _save_best(model, output: Path, write) -> None:
    target = output / BEST
    tmp = output / "best.saving.safetensors"
    tmp.unlink(missing_ok=True)
    write([model], tmp)
    tmp.replace(target)


def _record(run: FineTuneRun, row: dict) -> None:
    with open(run.output / HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
