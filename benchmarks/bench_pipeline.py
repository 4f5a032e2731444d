"""Seconds per page for layout, recognition and export, and peak memory, against kraken's own CLI.

Runs on 3 real pages from ../shared/datasets/peraire (or --pages DIR), REPEATS times, and prints
medians. Every measured command runs as its own process (peak RSS from wait4):

  biqe-lab (kraken)     biqe-lab process DIR --engine kraken --model M     (layout+recognition+export)
  kraken CLI            kraken -i P1 O1 ... segment -bl ocr -m M           (the same work, kraken alone)
  kraken CLI segment    kraken -i P1 O1 ... segment -bl
  biqe-lab (tesseract)  biqe-lab process DIR --engine tesseract             (the default engine today)

M is a small untrained kraken model (same network for both sides): until the project ships a
trained recognizer, it measures the cost of the plumbing around the network, not accuracy.

    .venv/bin/python benchmarks/bench_pipeline.py [--repeats 3] [--pages DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_PAGES = ROOT.parent / "shared" / "datasets" / "peraire" / "train"
SAMPLE = ["B.1.intro-eurasie_0005", "B.10.chine2_0020", "B.11.japon2_0043"]


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command run as a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pages", type=Path, default=None, help="folder of page images (default: 3 peraire pages)")
    ap.add_argument("--rows", default="all", help="comma-separated subset of the command names, e.g. "
                    "'biqe-lab (kraken),kraken CLI' for the ratio alone (default: all)")
    args = ap.parse_args()

    from biqe_lab.kraken_support import untrained_recognition_model

    work = Path(tempfile.mkdtemp(prefix="biqe_bench_"))
    pages_dir = work / "pages"
    pages_dir.mkdir()
    if args.pages:
        images = sorted(p for p in args.pages.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif"})[:3]
    else:
        images = [DEFAULT_PAGES / f"{name}.jpg" for name in SAMPLE]
    for img in images:  # images only: our run must not read ground truth the kraken run does not
        shutil.copy2(img, pages_dir / img.name)
    n = len(images)
    model = untrained_recognition_model(work / "bench.mlmodel", "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZéèàç.,'",
                                        spec="[1,48,0,1 Cr3,3,32 Mp2,2 Cr3,3,64 Mp2,2 S1(1x0)1,3 Lbx128 Do0.2,2 Lbx128 O1c{n}]")

    def kraken_cmd(*steps: str) -> list[str]:
        cmd = [str(BIN / "kraken"), "--device", "cpu"]
        for img in sorted(pages_dir.iterdir()):
            cmd += ["-i", str(img), str(work / f"kraken_{img.stem}.json")]
        return cmd + list(steps)

    commands = {
        "biqe-lab (kraken)": lambda out: [str(BIN / "biqe-lab"), "process", str(pages_dir), "--out", str(out),
                                          "--engine", "kraken", "--model", str(model), "-q"],
        "kraken CLI": lambda out: kraken_cmd("segment", "-bl", "ocr", "-m", str(model)),
        "kraken CLI segment": lambda out: kraken_cmd("segment", "-bl"),
        "biqe-lab (tesseract)": lambda out: [str(BIN / "biqe-lab"), "process", str(pages_dir), "--out", str(out),
                                             "--engine", "tesseract", "--lang", "fra", "-q"],
    }
    if args.rows != "all":
        wanted = [r.strip() for r in args.rows.split(",")]
        commands = {k: v for k, v in commands.items() if k in wanted}
    walls: dict[str, list[float]] = {k: [] for k in commands}
    rss: dict[str, list[float]] = {k: [] for k in commands}
    steps: dict[str, dict[str, list[float]]] = {k: {} for k in commands if k.startswith("biqe")}
    for rep in range(args.repeats):
        for name, make in commands.items():  # interleaved, so machine noise hits every row alike
            out = work / f"out_{rep}_{name.split()[-1].strip('()')}"
            wall, peak = measure(make(out))
            walls[name].append(wall / n)
            rss[name].append(peak)
            if name in steps:
                doc = json.loads((out / "document.json").read_text())
                for rec in doc["processing"]:
                    steps[name].setdefault(rec["step"], []).append(rec["seconds"] / n)
            print(f"  run {rep + 1}/{args.repeats} {name}: {wall / n:.2f} s/page, {peak:.0f} MiB", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"\n{n} pages ({', '.join(p.name for p in images)}), {args.repeats} runs, medians, "
          f"{os.cpu_count()} CPU cores\n")
    print(f"{'command':<22} {'s/page':>8} {'layout':>8} {'recogn.':>8} {'export':>8} {'peak MiB':>9}")
    for name in commands:
        st = {k: statistics.median(v) for k, v in steps.get(name, {}).items()}
        cols = [f"{st[k]:>8.2f}" if k in st else f"{'-':>8}" for k in ("layout", "recognition", "export")]
        print(f"{name:<22} {med[name]:>8.2f} {' '.join(cols)} {statistics.median(rss[name]):>9.0f}")
    ratios = [a / b for a, b in zip(walls["biqe-lab (kraken)"], walls["kraken CLI"])]
    print(f"\nbiqe-lab / kraken CLI, same model, whole chain: median ratio {statistics.median(ratios):.3f} "
          f"(per run: {', '.join(f'{r:.3f}' for r in ratios)})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
