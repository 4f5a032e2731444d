"""A bounded load test of the job API on loopback: 50 clients polling job statuses and 20 submitting scans.

Starts the real `biqe-lab serve --workers W` in a temp data dir. For DURATION seconds (the measured
phase) POLLERS clients poll the statuses of the jobs submitted so far as fast as they get answers,
while SUBMITTERS clients each submit a ZIP of one tiny synthetic page at an even pace (JOBS in all).
Then every job is polled once a second until it ended (at most DRAIN seconds), the server is
stopped, and the database and the workers' log are read: a job is *lost* when it was accepted (202)
but is unknown or not ended, *processed twice* when it was claimed more than once or two runs of it
ended done; the pages billed must be those of the done jobs. Prints one table.

The jobs run ground-truth layout + tesseract on their page (the API and the queue are under test,
not the models); ``--real-pipeline`` runs the workers' default pipeline (kraken) instead.

    .venv/bin/python benchmarks/load_api.py [--pollers 50] [--submitters 20] [--jobs 100] [--duration 30]
                                            [--workers 2] [--drain 300] [--real-pipeline]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "biqe_lab.cli"]
TERMINAL = {"done", "failed", "cancelled"}
FAST_PIPELINE = {"layout": "ground-truth", "engine": "tesseract", "languages": ["eng"]}


def tiny_page_zip() -> bytes:
    """One synthetic page (PNG) and its PAGE ground truth, zipped."""
    from biqe_lab.export import render_page as render_export
    from biqe_lab.synthetic import ground_truth_page, render_page

    with tempfile.TemporaryDirectory() as tmp:
        image, lines = render_page(["Hello world", "a second line"], seed=1, width=500)
        path = Path(tmp) / "p1.png"
        image.save(path, dpi=(300, 300))
        xml = render_export(ground_truth_page(path, lines), "pagexml")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("p1.png", path.read_bytes())
            archive.writestr("p1.xml", xml)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


async def _load(base: str, key: str, pollers: int, submitters: int, jobs: int, duration: float, drain: float,
                steps: str) -> dict:
    data = tiny_page_zip()
    latencies: dict[str, list[float]] = {"status": [], "submit": []}
    errors: Counter = Counter()
    accepted: list[str] = []
    limits = httpx.Limits(max_connections=pollers + submitters + 10, max_keepalive_connections=pollers + submitters)
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        end = started + duration
        interval = duration * submitters / max(1, jobs)  # each submitter's pace: JOBS in all within DURATION
        budget = [jobs]

        async def request(kind: str, method: str, url: str, **kwargs) -> httpx.Response | None:
            t0 = time.perf_counter()
            try:
                response = await client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                errors[f"{kind}: {type(exc).__name__}"] += 1
                return None
            if t0 < end:
                latencies[kind].append(time.perf_counter() - t0)
            return response

        async def submitter(index: int) -> None:
            await asyncio.sleep(interval * index / submitters)  # spread the first submissions
            while time.perf_counter() < end and budget[0] > 0:
                budget[0] -= 1
                t0 = time.perf_counter()
                r = await request("submit", "POST", "/v1/process-scan", files={"scan_zip": (f"s{index}.zip", data)},
                                  data={"pdf_format": "none", "pipeline_steps": steps})
                if r is not None and r.status_code == 202:
                    accepted.append(r.json()["job_id"])
                elif r is not None:
                    errors[f"submit: HTTP {r.status_code}"] += 1
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))

        async def poller(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < end:
                if not accepted:
                    await asyncio.sleep(0.05)
                    continue
                r = await request("status", "GET", f"/v1/process-scan/{rng.choice(accepted)}")
                if r is not None and r.status_code != 200:
                    errors[f"status: HTTP {r.status_code}"] += 1

        await asyncio.gather(*(submitter(i) for i in range(submitters)), *(poller(i) for i in range(pollers)))
        measured = time.perf_counter() - started

        # drain: every accepted job polled once a second until it ended (not measured)
        final: dict[str, str] = {}
        deadline = time.perf_counter() + drain
        while time.perf_counter() < deadline:
            pending = [j for j in accepted if final.get(j) not in TERMINAL]
            if not pending:
                break
            for job_id in pending:
                try:
                    r = await client.get(f"/v1/process-scan/{job_id}")
                    final[job_id] = r.json().get("state", f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    final[job_id] = type(exc).__name__
            await asyncio.sleep(1.0)
        drained = time.perf_counter() - started - measured
        usage = (await client.get("/v1/usage")).json()
    return {"measured_s": measured, "drained_s": drained, "latencies": latencies, "errors": errors,
            "accepted": accepted, "final": final, "usage": usage}


def _audit(data_dir: Path, log: Path, accepted: list[str]) -> dict:
    """What the database and the workers' log say about the accepted jobs."""
    db = sqlite3.connect(data_dir / "biqe.sqlite3")
    db.row_factory = sqlite3.Row
    rows = {r["id"]: dict(r) for r in db.execute("SELECT id, state, attempts, page_count FROM jobs")}
    db.close()
    done_runs = Counter(re.findall(r"job ([0-9a-f-]{36}) done", log.read_text(errors="replace")))
    lost = [j for j in accepted if j not in rows or rows[j]["state"] not in TERMINAL]
    twice = [j for j in accepted if j in rows and (rows[j]["attempts"] > 1 or done_runs[j] > 1)]
    done = [j for j in accepted if rows.get(j, {}).get("state") == "done"]
    return {"lost": lost, "twice": twice, "done": len(done), "failed": sum(rows.get(j, {}).get("state") == "failed"
                                                                        for j in accepted),
            "done_pages": sum(rows[j]["page_count"] for j in done), "unexpected_rows": len(set(rows) - set(accepted))}


def run_load(pollers: int = 50, submitters: int = 20, jobs: int = 100, duration: float = 30.0, workers: int = 2,
             drain: float = 300.0, real_pipeline: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        env = {**os.environ, "BIQE_DATA_DIR": str(data_dir), "BIQE_MAX_PAGES": "5", "PYTHONUNBUFFERED": "1"}
        if not real_pipeline:
            env["BIQE_PIPELINE_CONFIG"] = json.dumps(FAST_PIPELINE)
        run = lambda *a: subprocess.run([*CLI, *a], env=env, check=True, capture_output=True, text=True).stdout
        run("accounts", "create", "load")
        key = run("keys", "create", "--account", "load", "--label", "load").strip()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log_path = Path(tmp) / "serve.log"
        log = open(log_path, "wb")
        server = subprocess.Popen([*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                                   str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.3)
            steps = "layout,recognition,export"
            result = asyncio.run(_load(base, key, pollers, submitters, jobs, duration, drain, steps))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
        result["audit"] = _audit(data_dir, log_path, result["accepted"])
        tail = log_path.read_text(errors="replace").splitlines()
        result["server_errors"] = [line for line in tail if "Traceback" in line or " ERROR " in line][-10:]
    result["config"] = {"pollers": pollers, "submitters": submitters, "jobs": jobs, "duration": duration,
                        "workers": workers, "pipeline": "default (kraken)" if real_pipeline else "ground-truth + "
                                                                                                  "tesseract"}
    return result


def table(result: dict) -> str:
    """The result as a Markdown table (what the issue's note records)."""
    lat, secs, audit = result["latencies"], result["measured_s"], result["audit"]
    cfg = result["config"]
    errors = result["errors"]
    rows = [f"| {cfg['pollers']} pollers + {cfg['submitters']} submitters, {secs:.0f} s, serve --workers "
            f"{cfg['workers']} ({cfg['pipeline']}) | requests | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|"]
    every: list[float] = []
    for kind, label in (("status", "GET /v1/process-scan/{id}"), ("submit", "POST /v1/process-scan")):
        values = lat[kind]
        every += values
        n_err = sum(v for k, v in errors.items() if k.startswith(kind))
        if values:
            rows.append(f"| {label} | {len(values)} | {len(values) / secs:.1f} | {percentile(values, 0.5) * 1000:.1f} "
                        f"| {percentile(values, 0.99) * 1000:.1f} | {n_err} |")
    if every:
        rows.append(f"| all | {len(every)} | {len(every) / secs:.1f} | {percentile(every, 0.5) * 1000:.1f} | "
                    f"{percentile(every, 0.99) * 1000:.1f} | {sum(errors.values())} |")
    billed = result["usage"]["total_pages"]
    rows += ["", "| jobs accepted | done | failed | lost | processed twice | billed pages (of done jobs) | "
                 "all ended after |",
             "|---:|---:|---:|---:|---:|---:|---:|",
             f"| {len(result['accepted'])} | {audit['done']} | {audit['failed']} | {len(audit['lost'])} | "
             f"{len(audit['twice'])} | {billed} ({audit['done_pages']}) | {result['drained_s']:.0f} s more |"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--submitters", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=100, help="submissions in all, spread over the duration")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the measured phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drain", type=float, default=300.0, help="at most this long for every job to end")
    parser.add_argument("--real-pipeline", action="store_true", help="the workers' default pipeline (kraken)")
    args = parser.parse_args()
    result = run_load(args.pollers, args.submitters, args.jobs, args.duration, args.workers, args.drain,
                      args.real_pipeline)
    print(table(result))
    for kind, count in result["errors"].most_common(10):
        print(f"error: {kind} x{count}")
    for line in result["server_errors"]:
        print("server:", line)
    audit = result["audit"]
    if audit["lost"] or audit["twice"] or result["usage"]["total_pages"] != audit["done_pages"]:
        print("FAILED: lost", audit["lost"][:5], "twice", audit["twice"][:5])
        sys.exit(1)


if __name__ == "__main__":
    main()
