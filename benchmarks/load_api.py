"""A bounded load test of the job API on loopback: N concurrent submissions and M concurrent pollers.

Starts the real `biqe-lab serve --workers W` in a temp data dir, submits SUBMISSIONS ZIPs of one
tiny synthetic page at once (the real pipeline: kraken layout + recognition, no PDF), while POLLERS
clients poll job statuses as fast as they get answers for BURST seconds (the measured phase), then
once a second each until every job is terminal. Prints requests/s and latency percentiles of the
measured phase per kind of request, and checks that nothing was lost (every job accepted,
every job terminal, page counts billed = done jobs).

    .venv/bin/python benchmarks/load_api.py [--submissions 20] [--pollers 50] [--workers 1]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "biqe_lab.cli"]
TERMINAL = {"done", "failed", "cancelled"}


def tiny_page_zip() -> bytes:
    from biqe_lab.synthetic import render_page

    image, _ = render_page(["Hello world", "a second line"], seed=1, width=500)
    png = io.BytesIO()
    image.save(png, "PNG", dpi=(300, 300))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("p1.png", png.getvalue())
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


async def _load(base: str, key: str, submissions: int, pollers: int, timeout_s: float, burst_s: float) -> dict:
    data = tiny_page_zip()
    latencies: dict[str, list[float]] = {"submit": [], "status": []}
    errors: list[str] = []
    job_ids: list[str] = []
    limits = httpx.Limits(max_connections=submissions + pollers + 10)
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=120, limits=limits) as client:
        async def submit(i: int) -> None:
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/process-scan", files={"scan_zip": (f"s{i}.zip", data)},
                                      data={"pdf_format": "none"})
            except httpx.HTTPError as exc:
                errors.append(f"submit {i}: {type(exc).__name__} {exc}")
                return
            latencies["submit"].append(time.perf_counter() - t0)
            if r.status_code != 202:
                errors.append(f"submit {i}: {r.status_code} {r.text[:200]}")
            else:
                job_ids.append(r.json()["job_id"])

        async def get_retrying(url: str) -> httpx.Response:
            """A GET, retried once when the server closed an idle keep-alive connection as it was reused."""
            try:
                return await client.get(url)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                reused.append(url)
                return await client.get(url)

        reused: list[str] = []
        states: dict[str, str] = {}
        started = time.perf_counter()
        done_event = asyncio.Event()

        async def poll(seed: int) -> None:
            """Full speed for ``burst_s`` (the measured phase), then once a second until every job ended."""
            rng = random.Random(seed)
            while not done_event.is_set():
                if time.perf_counter() - started > burst_s:
                    await asyncio.sleep(1.0)
                if not job_ids:
                    await asyncio.sleep(0.05)
                    continue
                job_id = rng.choice(job_ids)
                t0 = time.perf_counter()
                try:
                    r = await get_retrying(f"/v1/process-scan/{job_id}")
                except httpx.HTTPError as exc:
                    errors.append(f"status {job_id}: {type(exc).__name__} {exc}")
                    continue
                if t0 - started <= burst_s:
                    latencies["status"].append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(f"status {job_id}: {r.status_code}")
                    continue
                states[job_id] = r.json()["state"]
                refused = sum(e.startswith("submit") for e in errors)
                if len(job_ids) + refused == submissions and all(states.get(j) in TERMINAL for j in job_ids):
                    done_event.set()
                if time.perf_counter() - started > timeout_s:
                    done_event.set()

        await asyncio.gather(*(submit(i) for i in range(submissions)), *(poll(i) for i in range(pollers)))
        elapsed = time.perf_counter() - started
        final = {j: (await get_retrying(f"/v1/process-scan/{j}")).json()["state"] for j in job_ids}
        usage = (await get_retrying("/v1/usage")).json()
    return {"elapsed": elapsed, "burst_s": min(burst_s, elapsed), "latencies": latencies, "errors": errors,
            "final": final, "usage": usage, "retried": len(reused)}


def run_load(submissions: int = 20, pollers: int = 50, workers: int = 1, timeout_s: float = 1800.0,
             burst_s: float = 60.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BIQE_DATA_DIR": str(Path(tmp) / "data"), "BIQE_MAX_PAGES": "5"}
        run = lambda *a: subprocess.run([*CLI, *a], env=env, check=True, capture_output=True, text=True).stdout
        run("accounts", "create", "load")
        key = run("keys", "create", "--account", "load", "--label", "load").strip()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(Path(tmp) / "serve.log", "wb")
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
            result = asyncio.run(_load(base, key, submissions, pollers, timeout_s, burst_s))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
            tail = (Path(tmp) / "serve.log").read_text(errors="replace").splitlines()
            print("\n".join(l for l in tail if "ERROR" in l or "Traceback" in l or "Error" in l)[-3000:],
                  file=sys.stderr)
    lat = result["latencies"]
    total = sum(len(v) for v in lat.values())
    result["summary"] = {
        "measured_requests": total, "measured_s": round(result["burst_s"], 1),
        "requests_per_s": round(total / result["burst_s"], 1), "all_jobs_ended_s": round(result["elapsed"], 1),
        **{f"{kind}_p50_ms": round(statistics.median(v) * 1000, 1) for kind, v in lat.items() if v},
        **{f"{kind}_p99_ms": round(percentile(v, 0.99) * 1000, 1) for kind, v in lat.items() if v},
        "jobs": len(result["final"]), "terminal": sum(s in TERMINAL for s in result["final"].values()),
        "done": sum(s == "done" for s in result["final"].values()), "billed_pages": result["usage"]["total_pages"],
        "errors": len(result["errors"]), "keepalive_retries": result["retried"],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--burst", type=float, default=60.0, help="seconds of full-speed polling (measured)")
    args = parser.parse_args()
    result = run_load(args.submissions, args.pollers, args.workers, args.timeout, args.burst)
    for key, value in result["summary"].items():
        print(f"{key:<18} {value}")
    for error in result["errors"][:10]:
        print("error:", error)


if __name__ == "__main__":
    main()
