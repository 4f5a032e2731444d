"""Training recognizers with kraken's machinery: held-out splits, precompiled line datasets, resumable runs."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .errors import InputError
from .ingest import find_images, ground_truth_for

# Small enough for 2 CPU cores (~0.2 s per line per epoch at 48 px), large enough for one hand.
DEFAULT_SPEC = "[1,48,0,1 Cr3,3,32 Mp2,2 Cr3,3,64 Mp2,2 S1(1x0)1,3 Lbx128 Do0.2,2 Lbx128 Do]"
SPLITS = ("train", "validation", "test")


def split_of(key: str) -> str:
    """A stable split from a name: 1 in 10 test, 1 in 10 validation, the rest train.

    Hash-based, so a page or writer keeps its split when a data set grows, and held-out
    pages never leak into training between runs.
    """
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


@dataclass
class SplitPlan:
    """Which page files (ALTO/PAGE) and line images (PNG + .gt.txt) go to which split."""

    pages: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    lines: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    held_out: dict[str, list[str]] = field(default_factory=dict)  # data set -> held-out pages / writers
    dataset_of: dict[str, str] = field(default_factory=dict)  # file -> data set name

    def to_json(self) -> dict:
        return {"pages": self.pages, "lines": self.lines, "held_out": self.held_out, "dataset_of": self.dataset_of}

    @classmethod
    def from_json(cls, data: dict) -> "SplitPlan":
        return cls(pages=data["pages"], lines=data["lines"], held_out=data["held_out"],
                   dataset_of=data.get("dataset_of", {}))


def _line_writers(folder: Path) -> dict[str, str]:
    """Line image name -> writer (or document), from the set's manifest.tsv when it has one."""
    manifest = folder / "manifest.tsv"
    if not manifest.is_file():
        return {}
    out = {}
    for row in manifest.read_text(encoding="utf-8").splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) >= 3:
            out[cols[0]] = cols[2]
    return out


def plan_split(data_dirs: Sequence[Path]) -> SplitPlan:
    """Split every data folder: page sets by page, line sets by writer (unseen hands in test)."""
    plan = SplitPlan()
    for folder in map(Path, data_dirs):
        if not folder.is_dir():
            raise InputError(f"training data folder {folder} does not exist")
        name = folder.name if folder.name not in ("train", "data") else folder.parent.name
        gt_lines = sorted(folder.rglob("*.gt.txt"))
        if gt_lines:
            writers = _line_writers(folder)
            for gt in gt_lines:
                image = gt.with_name(gt.name[: -len(".gt.txt")] + ".png")
                if not image.is_file():
                    continue
                writer = writers.get(image.name, image.stem)
                split = split_of(f"{name}/{writer}")
                plan.lines[split].append(str(image))
                plan.dataset_of[str(image)] = name
                if split == "test":
                    plan.held_out.setdefault(name, [])
                    if writer not in plan.held_out[name]:
                        plan.held_out[name].append(writer)
            continue
        pairs = [(img, ground_truth_for(img)) for img in find_images(folder)]
        pairs = [(img, xml) for img, xml in pairs if xml is not None]
        if not pairs:
            raise InputError(f"{folder} holds neither page images with .xml ground truth nor .gt.txt line files")
        for img, xml in pairs:
            split = split_of(f"{name}/{img.relative_to(folder)}")
            plan.pages[split].append(str(xml))
            plan.dataset_of[str(xml)] = name
            if split == "test":
                plan.held_out.setdefault(name, []).append(str(img.relative_to(folder)))
    if not plan.pages["train"] and not plan.lines["train"]:
        raise InputError("no training lines: every file fell into the held-out splits")
    return plan


def _ketos(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "ketos"), *args]


def compile_datasets(plan: SplitPlan, workdir: Path, log=print) -> dict[str, list[Path]]:
    """Precompile each split into kraken arrow files (line images extracted once, not every epoch).

    Page files are extracted along their baselines and polygons (as at recognition time);
    line images are taken as they are and labelled baseline-style so the two mix.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        for kind, files, extra in (("pages", plan.pages[split], ["-f", "xml"]),
                                   ("lines", plan.lines[split], ["-f", "path", "--force-type", "baseline"])):
            if not files:
                continue
            target = workdir / f"{split}_{kind}.arrow"
            listing = workdir / f"{split}_{kind}.txt"
            content = "\n".join(files) + "\n"
            if target.is_file() and listing.is_file() and listing.read_text(encoding="utf-8") == content:
                log(f"{target.name}: up to date ({len(files)} files)")
            else:
                listing.write_text(content, encoding="utf-8")
                log(f"compiling {target.name} from {len(files)} files")
                cmd = _ketos("compile", "-o", str(target), "-F", str(listing), *extra)  # xml: ALTO or PAGE
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0 or not target.is_file():
                    raise InputError(f"ketos compile failed for {target.name}: {proc.stderr[-1500:]}")
            out[split].append(target)
    return out


@dataclass
class TrainingRun:
    """One ketos training run (resumable): what to train on, the network, and where checkpoints go."""

    datasets: dict[str, list[Path]]
    output: Path
    spec: str = DEFAULT_SPEC
    base_model: Optional[Path] = None
    epochs: int = -1  # -1: until early stopping
    min_epochs: int = 5
    lag: int = 5
    batch_size: int = 8
    lrate: float = 1e-3
    threads: int = 2
    augment: bool = True  # kraken's historical-document line augmentation
    keep_charset: bool = False  # fine-tune: keep every character the base reads (kraken's `union`), not only the data's
    extra: list[str] = field(default_factory=list)

    def command(self, resume: Optional[Path] = None) -> list[str]:
        evaluation = self.output / "validation_sets.txt"
        training = self.output / "training_sets.txt"
        training.write_text("\n".join(map(str, self.datasets["train"])) + "\n", encoding="utf-8")
        evaluation.write_text("\n".join(map(str, self.datasets["validation"])) + "\n", encoding="utf-8")
        # -v: one log line per validation run (CER) instead of a terminal progress bar
        cmd = _ketos("-v", "--threads", str(self.threads), "train", "-f", "binary", "-t", str(training),
                     "-e", str(evaluation), "-o", str(self.output), "-B", str(self.batch_size),
                     "-r", str(self.lrate), "--lag", str(self.lag), "--min-epochs", str(self.min_epochs),
                     "-u", "NFC", "--augment" if self.augment else "--no-augment")
        if self.epochs > 0:
            cmd += ["-q", "fixed", "-N", str(self.epochs)]
        if resume is not None:
            cmd += ["--resume", str(resume)]
        elif self.base_model is not None:
            # `new`: the charset becomes the data's (rows the base knows are kept, the rest added, the
            # unused dropped); `union` kept every base row and cost the published peraire runs 6.4 -> 35 % CER.
            # A few corrected lines (the workbench's loop) need `union`: `new` would drop what they lack.
            cmd += ["-i", str(self.base_model), "--resize", "union" if self.keep_charset else "new"]
        else:
            cmd += ["-s", self.spec]
        return cmd + self.extra


def latest_checkpoint(output: Path) -> Optional[Path]:
    """The newest resumable checkpoint in a run's output folder, if any."""
    ckpts = sorted(output.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return ckpts[-1] if ckpts else None


def run_training(run: TrainingRun, resume: bool = True, log=print) -> int:
    """Run ketos, reporting each validation (epoch, CER); resume from the newest checkpoint.

    ketos' full output goes to ``train.log``; every invocation's start, end and exit code is
    appended to ``sessions.jsonl`` so a model card can state the total training time.
    """
    run.output.mkdir(parents=True, exist_ok=True)
    ckpt = latest_checkpoint(run.output) if resume else None
    cmd = run.command(resume=ckpt)
    log(("resuming from " + ckpt.name) if ckpt else "starting a new run")
    started, epoch = time.time(), _epochs_done(run.output)
    env = {**os.environ, "COLUMNS": "400"}  # one log record per line, so progress can be read from it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    with open(run.output / "train.log", "a", encoding="utf-8") as logfile:
        logfile.write(" ".join(cmd) + "\n")
        for line in proc.stdout:  # type: ignore[union-attr]
            logfile.write(line)
            logfile.flush()
            if match := _VALIDATION.search(line):
                epoch += 1
                chars, errors = float(match.group(1)), float(match.group(2))
                log(f"epoch {epoch}: validation CER {errors / max(chars, 1):.2%} ({errors:.0f}/{chars:.0f} chars), "
                    f"{(time.time() - started) / 60:.1f} min in this session")
    code = proc.wait()
    with open(run.output / "sessions.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"started": started, "ended": time.time(), "exit_code": code,
                            "resumed_from": ckpt.name if ckpt else None, "threads": run.threads}) + "\n")
    return code


_VALIDATION = re.compile(r"validation run: total chars ([\d.]+)\s+errors ([\d.]+)")


def _epochs_done(output: Path) -> int:
    epochs = [int(m.group(1)) + 1 for c in output.glob("checkpoint_*-*.ckpt")
              if (m := re.match(r"checkpoint_(\d+)-", c.name))]
    return max(epochs, default=0)


def training_seconds(output: Path) -> float:
    """Wall-clock training time over every session of a run."""
    sessions = output / "sessions.jsonl"
    if not sessions.is_file():
        return 0.0
    return sum(r["ended"] - r["started"] for r in map(json.loads, sessions.read_text().splitlines()) if r)


def write_split(plan: SplitPlan, path: Path) -> None:
    path.write_text(json.dumps(plan.to_json(), indent=1, ensure_ascii=False), encoding="utf-8")


PAGE_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".JPG", ".PNG")


def image_of(xml: Path) -> Optional[Path]:
    """The page image beside a ground-truth XML file, if there is one."""
    return next((c for ext in PAGE_IMAGE_SUFFIXES if (c := xml.with_suffix(ext)).is_file()), None)


def page_images(plan: SplitPlan, part: str, dataset: str, root: Path = Path(".")) -> list[Path]:
    """The images of one data set's pages in one part of the split (relative paths taken from ``root``)."""
    xmls = [root / p for p in plan.pages[part] if f"/datasets/{dataset}/" in p]
    return [image for xml in xmls if (image := image_of(xml)) is not None]


def copy_held_out(plan: SplitPlan, dest: Path) -> dict[str, Path]:
    """Copy each data set's test files (page image + XML, or line image + .gt.txt) to ``dest/<set>/``.

    The folders are what `biqe-lab evaluate` reads, so held-out figures come from the CLI itself.
    """
    folders: dict[str, Path] = {}
    for path in map(Path, plan.pages["test"] + plan.lines["test"]):
        name = plan.dataset_of.get(str(path), path.parent.name)
        folder = folders.setdefault(name, dest / name)
        folder.mkdir(parents=True, exist_ok=True)
        companion = image_of(path) if path.suffix == ".xml" else path.with_name(path.stem + ".gt.txt")
        for src in [path, *([companion] if companion else [])]:
            target = folder / src.name
            if not target.exists():
                shutil.copy2(src, target)
    return folders


def best_checkpoint(output: Path) -> Optional[tuple[Path, float]]:
    """The epoch checkpoint with the best validation accuracy (kraken names them ..-{val_metric})."""
    scored = []
    for ckpt in output.glob("checkpoint_*-*.ckpt"):
        try:
            scored.append((float(ckpt.stem.rsplit("-", 1)[1]), ckpt))
        except ValueError:
            continue
    if not scored:
        return None
    metric, ckpt = max(scored)  # val_metric is character accuracy (1 - CER)
    return ckpt, metric


def export_weights(checkpoint: Path, target: Path) -> Path:
    """Convert a training checkpoint into a safetensors model file that `--engine kraken` loads."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".converting.safetensors")
    tmp.unlink(missing_ok=True)
    proc = subprocess.run(_ketos("convert", "-o", str(tmp), str(checkpoint)), capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        raise InputError(f"ketos convert failed for {checkpoint.name}: {proc.stderr[-1500:]}")
    tmp.replace(target)
    return target


def train(data_dirs: Sequence[Path], out: Path, workdir: Optional[Path] = None, synthetic: int = 0,
          base_model: Optional[str] = None, epochs: Optional[int] = None, spec: Optional[str] = None,
          batch_size: int = 8, lrate: Optional[float] = None, threads: int = 2, fresh: bool = False,
          keep_charset: bool = False, log=print) -> str:
    """Train (or fine-tune ``base_model``) a recognizer on ``data_dirs`` into ``out``, resumably; a summary line.

    Splits, compiled datasets, checkpoints and logs go to ``workdir`` (default: ``out``'s name +
    ``.work``). A PP-OCRv6 base model is fine-tuned by the plain CTC loop of
    :mod:`biqe_lab.finetune`; any other by kraken's trainer (``epochs`` None: until converged).
    """
    base = None
    if base_model:
        from .model_registry import resolve_model

        base = Path(resolve_model(base_model))
        if not base.is_file():
            raise InputError(f"base model {base_model!r} is neither a model file nor a name from the model "
                             "registry (biqe-lab models list)")
    out = Path(out)
    work = Path(workdir) if workdir else out.with_name(out.stem + ".work")
    work.mkdir(parents=True, exist_ok=True)
    dirs = [Path(d) for d in data_dirs]
    if synthetic > 0:
        from .synthetic import write_synthetic_pages

        synth = work / "synthetic"
        if not any(synth.glob("*.xml")):
            log(f"rendering about {synthetic} synthetic lines into {synth}")
            write_synthetic_pages(synth, max(1, synthetic // 11), seed=0)
        dirs.append(synth)
    plan = plan_split(dirs)
    write_split(plan, work / "split.json")
    for split in SPLITS:
        log(f"{split}: {len(plan.pages[split])} pages, {len(plan.lines[split])} line images")
    datasets = compile_datasets(plan, work / "data", log=log)
    from .finetune import FineTuneRun, fine_tune, is_ppocrv6

    if base is not None and is_ppocrv6(base):  # the plain CTC loop (see biqe_lab.finetune)
        if fresh:
            (work / "checkpoints" / "checkpoint.pt").unlink(missing_ok=True)
        ft = FineTuneRun(base_model=base, train=datasets["train"], validation=datasets["validation"],
                         output=work / "checkpoints", epochs=epochs or 10, batch_size=batch_size,
                         lrate=lrate or 1e-4, final_lrate=(lrate or 1e-4) / 10, threads=threads,
                         validate_every=200,  # cosine decay to a tenth over the run, as kraken's PP-OCR recipe
                         keep_charset=keep_charset)
        result = fine_tune(ft, log=log)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ft.output / "best.safetensors", out)
        return (f"model written to {out} (best validation CER {result['best_val_cer']:.2%}); "
                f"held-out split in {work / 'split.json'}")
    run = TrainingRun(datasets=datasets, output=work / "checkpoints", spec=spec or DEFAULT_SPEC, base_model=base,
                      epochs=epochs or -1, batch_size=batch_size, lrate=lrate or 1e-3, threads=threads,
                      keep_charset=keep_charset)
    code = run_training(run, resume=not fresh, log=log)
    best = best_checkpoint(run.output)
    if best is None:
        raise InputError(f"training ended (exit {code}) without a checkpoint; see {run.output / 'train.log'}")
    export_weights(best[0], out)
    return (f"model written to {out} (best validation accuracy {best[1]:.2%} from {best[0].name}); "
            f"held-out split in {work / 'split.json'}")
