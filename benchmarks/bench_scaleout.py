"""Pages per minute of production mode (Celery on Redis, PostgreSQL) with 1, 2, ... Celery worker processes.

For each worker count: throwaway PostgreSQL and Redis on loopback, the API alone (`biqe-lab serve
--workers 0`) and N `biqe-lab worker --queue celery` processes (models loaded before the clock starts);
JOBS jobs of PAGES pages are submitted at once and timed from the first submission to the last job done.
Pages: tiny synthetic pages with their ground-truth layout + tesseract (what the tests use; measures the
queue and store overhead plus recognition), or with --real real peraire pages (../shared/datasets) through
kraken layout + tesseract (the sizing figure: what one page costs a worker core).

    .venv/bin/python benchmarks/bench_scaleout.py [--workers 1,2] [--jobs 10] [--pages 4] [--real]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PERAIRE = ROOT.parent / "shared" / "datasets" / "peraire" / "train"
TERMINAL = {"done", "failed", "cancelled"}


def synthetic_zip(pages: int) -> bytes:
    from biqe_lab.export import render_page as render_export
    from biqe_lab.synthetic import ground_truth_page, render_page

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w") as archive:
        for i in range(1, pages + 1):
            image, lines = render_page(["Hello world", "a second line"], seed=i, width=500)
            path = Path(tmp) / f"p{i}.png"
            image.save(path, dpi=(300, 300))
            archive.write(path, path.name)
            archive.writestr(f"p{i}.xml", render_export(ground_truth_page(path, lines), "pagexml"))
    return buf.getvalue()


def real_zip(pages: int) -> bytes:
    images = sorted(PERAIRE.glob("*.jpg"))[:pages]
    if len(images) < pages:
        sys.exit(f"--real needs {pages} pages in {PERAIRE}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for image in images:  # the image alone: kraken finds the lines
            archive.write(image, image.name)
    return buf.getvalue()


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes and of their children they waited for (tesseract runs), from /proc."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return total


def run(workers: int, jobs: int, data: bytes, pages: int, pipeline: dict, pg, redis, index: int) -> dict:
    from biqe_lab.api.localservers import Stack
    from biqe_lab.api.store import Store

    folder = Path(tempfile.mkdtemp(prefix=f"biqe-bench-{workers}w-"))
    stack = Stack(folder, pg.create_database(f"bench{index}"), redis.url(index),
                  BIQE_PIPELINE_CONFIG=json.dumps(pipeline), BIQE_MAX_PAGES=str(max(pages, 500)))
    store = Store(stack.env["BIQE_DATABASE_URL"])
    store.create_account("bench")
    _, key = store.create_key("bench", "bench")
    try:
        for _ in range(workers):
            stack.add_worker()
        stack.wait_ready(timeout=600)
        client = httpx.Client(base_url=stack.base, headers={"X-API-Key": key}, timeout=120)
        pids = [proc.pid for proc, _ in stack.workers]
        cpu0 = cpu_seconds(pids)
        form = {"pipeline_steps": "layout,recognition,export", "pdf_format": "none"}
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(min(jobs, 20)) as pool:
            job_ids = list(pool.map(lambda i: client.post(
                "/v1/process-scan", files={"scan_zip": (f"s{i}.zip", data, "application/zip")}, data=form)
                .json()["job_id"], range(jobs)))
        pending = set(job_ids)
        states: dict[str, str] = {}
        while pending:
            for job_id in list(pending):
                state = client.get(f"/v1/process-scan/{job_id}").json()["state"]
                if state in TERMINAL:
                    states[job_id] = state
                    pending.discard(job_id)
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds(pids) - cpu0
        client.close()
    finally:
        stack.close()
        store.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    done = sum(1 for s in states.values() if s == "done")
    total_pages = done * pages
    return {"workers": workers, "jobs": jobs, "done": done, "pages": total_pages, "seconds": seconds,
            "pages_per_min": total_pages / seconds * 60, "pages_per_hour_per_worker": total_pages / seconds * 3600
            / workers, "cpu_s_per_page": cpu / max(total_pages, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--pages", type=int, default=4, help="pages per job")
    parser.add_argument("--real", action="store_true", help="real peraire pages through kraken layout")
    args = parser.parse_args()

    from biqe_lab.api.localservers import Postgres, Redis, missing_programs

    if missing_programs():
        sys.exit("needs " + " and ".join(missing_programs()) + " (scripts/setup.sh installs them)")
    if args.real:
        data = real_zip(args.pages)
        pipeline = {"layout": "kraken", "engine": "tesseract", "languages": ["fra", "lat", "eng"]}
    else:
        data = synthetic_zip(args.pages)
        pipeline = {"layout": "ground-truth", "engine": "tesseract", "languages": ["eng"]}
    pg, redis = Postgres().start(), Redis().start()
    rows = []
    try:
        for index, workers in enumerate(int(w) for w in args.workers.split(",")):
            rows.append(run(workers, args.jobs, data, args.pages, pipeline, pg, redis, index + 1))
            print(f"... {workers} worker(s): {rows[-1]['pages']} pages in {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    finally:
        redis.stop()
        pg.stop()
    kind = "real peraire pages, kraken layout + tesseract" if args.real else \
        "tiny synthetic pages, ground-truth layout + tesseract"
    print(f"\nproduction mode (Celery + Redis + PostgreSQL), {kind}; {os.cpu_count()} CPU cores\n")
    print("CPU s/page: worker CPU time (with tesseract's) per page; pages/h per core = 3600 / CPU s/page, "
          "the sizing figure that other processes on the machine do not skew\n")
    print(f"| {'workers':>7} | {'jobs':>4} | {'pages':>5} | {'seconds':>7} | {'pages/min':>9} | "
          f"{'pages/h per worker':>18} | {'speed-up':>8} | {'CPU s/page':>10} | {'pages/h per core':>16} |")
    print(f"|{'-' * 9}|{'-' * 6}|{'-' * 7}|{'-' * 9}|{'-' * 11}|{'-' * 20}|{'-' * 10}|{'-' * 12}|{'-' * 18}|")
    for row in rows:
        print(f"| {row['workers']:>7} | {row['jobs']:>4} | {row['pages']:>5} | {row['seconds']:>7.1f} | "
              f"{row['pages_per_min']:>9.1f} | {row['pages_per_hour_per_worker']:>18.0f} | "
              f"{row['pages_per_min'] / rows[0]['pages_per_min']:>7.2f}x | {row['cpu_s_per_page']:>10.2f} | "
              f"{3600 / max(row['cpu_s_per_page'], 1e-9):>16.0f} |")
    if any(row["done"] < row["jobs"] for row in rows):
        sys.exit("some jobs did not end done")


if __name__ == "__main__":
    main()
