"""End to end: the real `biqe-lab serve --workers 1` on loopback, two real pages through kraken layout,
recognition and PDF/A, the result's PageXML/ALTO checked against the official schemas, and the signed
webhook received and verified on a loopback receiver; then a worker killed mid-job."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from lxml import etree

from biqe_lab.formats.common import xml_parser

from conftest import PERAIRE, SAMPLE_PAGE, WebhookReceiver

pytestmark = pytest.mark.slow
SECOND_PAGE = PERAIRE / "B.1.intro-eurasie_0005.jpg"
CLI = [sys.executable, "-m", "biqe_lab.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "BIQE_DATA_DIR": str(data_dir), "BIQE_ALLOW_INSECURE_WEBHOOKS": "1",
            "BIQE_WEBHOOK_BACKOFF": "0.5,1,1,1,1", "PYTHONUNBUFFERED": "1"}


def _cli(env, *args) -> str:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _account(env) -> tuple[str, str]:
    secret = _cli(env, "accounts", "create", "e2e").split("webhook_secret: ")[1].strip()
    key = _cli(env, "keys", "create", "--account", "e2e", "--label", "e2e").strip()
    return secret, key


def _start(cmd, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail("the server did not answer /healthz within 60 s:\n" + log.read_text())


def _poll(client: httpx.Client, job_id: str, until: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/process-scan/{job_id}").json()
        if status["state"] in until:
            return status
        time.sleep(1)
    pytest.fail(f"job {job_id} did not reach {until} in {timeout} s: {status}")


@pytest.fixture
def pages(sample_dir) -> bytes:
    if not SECOND_PAGE.exists():
        pytest.skip(f"{SECOND_PAGE} is not on this machine")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.write(sample_dir / f"{SAMPLE_PAGE}.jpg", f"{SAMPLE_PAGE}.jpg")
        archive.write(SECOND_PAGE, SECOND_PAGE.name)
    return buf.getvalue()


def test_real_server_two_real_pages_with_signed_webhook(tmp_path, pages, schemas):
    env = _env(tmp_path / "data")
    secret, key = _account(env)
    receiver = WebhookReceiver(failures=1, fail_status=503)  # the first one fails; bound before the server's port is picked, so that it cannot take that port
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    server = _start([*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, log)
    try:
        _wait_healthy(base, server, log)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        r = client.post("/v1/process-scan", files={"scan_zip": ("pages.zip", pages, "application/zip")},
                        data={"webhook_url": receiver.url, "llm_tier": "balanced", "preset": "generic_historical"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["page_count"] == 2 and job["state"] == "queued"
        seen = {_poll(client, job["job_id"], {"processing", "done", "failed"}, 120)["state"]}
        status = _poll(client, job["job_id"], {"done", "failed", "cancelled"}, 900)
        assert status["state"] == "done", (status, log.read_text()[-3000:])
        assert status["result_url"] == f"{base}/v1/process-scan/{job['job_id']}/result"

        result = client.get(status["result_url"])
        assert result.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(result.content))
        names = set(archive.namelist())
        stems = (SAMPLE_PAGE, SECOND_PAGE.stem)
        assert {f"{d}/{s}.xml" for d in ("page", "alto") for s in stems} | {"document.json", "pages.pdf"} <= names
        for folder, xsd in (("page", "pagecontent-2019-07-15.xsd"), ("alto", "alto-4-4.xsd")):
            schema = etree.XMLSchema(etree.parse(str(schemas / xsd)))
            for stem in stems:
                doc = etree.fromstring(archive.read(f"{folder}/{stem}.xml"), xml_parser())
                assert schema.validate(doc), schema.error_log
        document = json.loads(archive.read("document.json"))
        assert all(len(p["lines"]) > 5 for p in document["pages"])  # kraken found the lines
        assert archive.read("pages.pdf").startswith(b"%PDF")

        deadline = time.monotonic() + 30
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(receiver.requests) == 2, log.read_text()[-3000:]
        _, headers, body = receiver.requests[-1]
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, headers["X-BIQE-Signature"])
        assert headers["X-BIQE-Event"] == "job.completed" and headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"job_id": job["job_id"], "state": "done", "page_count": 2,
                                    "result_url": status["result_url"]}
        assert receiver.requests[0][2] == body
        webhook = client.get(f"/v1/process-scan/{job['job_id']}").json()["webhook"]
        assert webhook == {"attempts": 2, "last_status": 200, "delivered": True}
        usage = client.get("/v1/usage").json()
        assert usage["total_pages"] == 2
        assert "processing" in seen or "done" in seen
    finally:
        receiver.close()
        _stop(server)
    assert server.returncode is not None


def test_worker_killed_mid_job_is_redone(tmp_path, sample_dir, schemas):
    """SIGKILL the only worker while it runs a job; the store stays sound, and a new worker redoes the job
    once the heartbeat is stale (aged here in the database rather than waiting the 2-minute timeout)."""
    env = _env(tmp_path / "data")
    _, key = _account(env)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    api = _start([*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0"], env,
                 tmp_path / "serve.log")
    worker = _start([*CLI, "worker"], env, tmp_path / "worker1.log")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.write(sample_dir / f"{SAMPLE_PAGE}.jpg", f"{SAMPLE_PAGE}.jpg")
    try:
        _wait_healthy(base, api, tmp_path / "serve.log")
        client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)
        job_id = client.post("/v1/process-scan", files={"scan_zip": ("one.zip", buf.getvalue())},
                             data={"pdf_format": "none"}).json()["job_id"]
        status = _poll(client, job_id, {"processing", "done", "failed"}, 120)
        assert status["state"] == "processing"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        status = client.get(f"/v1/process-scan/{job_id}").json()
        assert status["state"] == "processing"  # nothing moves it but the heartbeat check
        db = sqlite3.connect(tmp_path / "data" / "biqe.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with db:
            db.execute("UPDATE jobs SET heartbeat_at = heartbeat_at - 3600 WHERE id = ?", (job_id,))
        db.close()
        worker = _start([*CLI, "worker"], env, tmp_path / "worker2.log")
        status = _poll(client, job_id, {"done", "failed"}, 600)
        assert status["state"] == "done", (status, (tmp_path / "worker2.log").read_text()[-3000:])
        assert client.get(status["result_url"]).status_code == 200
        assert client.get("/v1/usage").json()["total_pages"] == 1  # billed once
    finally:
        _stop(worker)
        _stop(api)
