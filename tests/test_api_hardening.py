"""Hardening of the job API (issue 17): one test per defect an outside probe found, each failing before its fix."""
from __future__ import annotations

import io
import logging
import os
import re
import shutil
import socket
import stat
import struct
import threading
import time
import zlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from biqe_lab.api.settings import Settings
from biqe_lab.api.store import iso, parse_iso, utcnow
from biqe_lab.api.worker import Worker
from biqe_lab.errors import InputError

from test_api import TEST_CONFIG, Api, make_zip, page_files, scan_zip, settings, api, worker  # noqa: F401

PASSWORD = "correct horse battery staple"


def png_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 255).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` and whose pixel data is a few bytes: a pixel bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tiff_frames(count: int, size: int) -> bytes:
    frames = [Image.new("L", (size, size), 255) for _ in range(count)]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    return buf.getvalue()


# -- a real server on loopback (for what only a socket shows: chunked bodies, disconnects) ------------------
class LiveServer:
    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.api = Api(settings)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.api.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        return sock

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(settings):
    server = LiveServer(settings)
    yield server
    server.close()


BOUNDARY = "hardening-boundary"


def chunked_request_head(key: str | None, path: str = "/v1/process-scan") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked",
             f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    if key:
        lines.append(f"X-API-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def file_part_head(name: str = "scan_zip", filename: str = "scan.zip") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def read_response(sock: socket.socket, timeout: float) -> bytes:
    """What the server answered within ``timeout`` seconds (b"" when it said nothing)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", head, re.I)
            if sep and (length is None or len(body) >= int(length.group(1))):
                break
            more = sock.recv(65536)
            if not more:
                break
            data += more
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def answered(sock: socket.socket) -> bytes:
    """The server's answer if one is already there (non-blocking), else b""."""
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except (BlockingIOError, ConnectionResetError):
        return b""
    finally:
        sock.setblocking(True)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# -- 1. unauthenticated disk fill ---------------------------------------------------------------------------
def test_chunked_upload_without_a_key_is_refused_before_the_body_is_read(live):
    with live.connect() as sock:
        sock.sendall(chunked_request_head(None) + chunk(file_part_head() + b"x" * 65536))
        answer = read_response(sock, timeout=5)  # the body is far from complete: only the key can be judged
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert list(live.api.settings.tmp_dir.iterdir()) == []


def test_chunked_upload_is_cut_off_at_the_limit_and_leaves_nothing(live):
    limit = live.api.settings.max_upload_bytes
    sent = 0
    answer = b""
    with live.connect() as sock:
        sock.sendall(chunked_request_head(live.api.key) + chunk(file_part_head()))
        block = b"z" * 65536
        try:
            while sent < 4 * limit and not answer:
                sock.sendall(chunk(block))
                sent += len(block)
                answer = answered(sock)
        except (BrokenPipeError, ConnectionResetError):  # the server closed the connection after answering
            pass
        answer += read_response(sock, timeout=2)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"upload_too_large" in answer
    assert sent < 4 * limit  # answered while the client still had most of its body to send
    assert wait_until(lambda: list(live.api.settings.tmp_dir.iterdir()) == [])
    assert live.api.job_rows() == 0


def test_upload_is_spooled_under_the_data_dir_and_removed_when_the_client_disconnects(live):
    tmp_dir = live.api.settings.tmp_dir
    with live.connect() as sock:
        sock.sendall(chunked_request_head(live.api.key) + chunk(file_part_head() + b"y" * 300_000))
        assert wait_until(lambda: any(p.is_file() and p.stat().st_size > 0 for p in tmp_dir.rglob("*"))), \
            "the upload in progress is not spooled under the data directory"
        spooled = [p for p in tmp_dir.rglob("*") if p.is_file()]
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in spooled)
    # the socket is closed mid-body: the spooled part is removed
    assert wait_until(lambda: list(tmp_dir.iterdir()) == []), list(tmp_dir.rglob("*"))
    assert live.api.job_rows() == 0


def test_declared_length_over_the_limit_is_413_before_auth(api):
    r = api.client.post("/v1/process-scan", content=b"x" * 10,
                        headers={"Content-Length": str(api.settings.max_upload_bytes * 2),
                                 "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"


# -- 2. pixel bomb -------------------------------------------------------------------------------------------
def test_pixel_limit_per_page_is_checked_from_the_header(settings):
    api = Api(replace(settings, max_page_megapixels=1.0))
    r = api.submit(make_zip({"scans/big.png": png_bytes(1200, 1000)}))
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["error"] == "image_too_large" and "scans/big.png" in body["message"] and "1.2" in body["message"]
    assert api.job_rows() == 0 and api.stored_files() == []
    assert api.submit(make_zip({"ok.png": png_bytes(1000, 900)})).status_code == 202  # 0.9 MP: fine


def test_pixel_bomb_is_refused_without_decoding(api):
    """A 13,000 x 13,000 PNG whose data is a few bytes: refused from its header (its pixels cannot be decoded)."""
    r = api.submit(make_zip({"bomb.png": png_header_only(13_000, 13_000)}))
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "image_too_large" and "bomb.png" in r.json()["message"]
    assert api.job_rows() == 0 and api.stored_files() == []


def test_pixel_limit_per_job_counts_every_frame_of_a_tiff(settings):
    api = Api(replace(settings, max_pages=10, max_page_megapixels=1.0, max_job_megapixels=1.0))
    r = api.submit(make_zip({"book.tif": tiff_frames(3, 600)}))  # 3 x 0.36 MP
    assert r.status_code == 413 and r.json()["error"] == "image_too_large", r.text
    assert "job" in r.json()["message"]
    assert api.job_rows() == 0 and api.stored_files() == []
    ok = api.submit(make_zip({"book.tif": tiff_frames(2, 600)}))
    assert ok.status_code == 202 and ok.json()["page_count"] == 2


def test_pixel_limits_from_the_environment(tmp_path):
    s = Settings.from_env({"BIQE_MAX_PAGE_MEGAPIXELS": "50", "BIQE_MAX_JOB_MEGAPIXELS": "2000"})
    assert (s.max_page_pixels, s.max_job_pixels) == (50_000_000, 2_000_000_000)
    with pytest.raises(InputError):
        Settings.from_env({"BIQE_MAX_PAGE_MEGAPIXELS": "lots"})
    with pytest.raises(InputError):
        Settings.from_env({"BIQE_MAX_JOB_MEGAPIXELS": "0"})


# -- 3. a webhook URL that httpx refuses ---------------------------------------------------------------------
@pytest.fixture
def insecure(settings) -> Settings:
    return replace(settings, allow_insecure_webhooks=True, webhook_backoff=(0.05, 0.05))


def test_webhook_url_is_parsed_and_normalized_by_the_parser_that_sends_it(insecure, scan_zip):
    api = Api(insecure)
    r = api.submit(scan_zip, webhook_url="http://127.0.0.1:9/a\tb")
    assert r.status_code == 400 and r.json()["error"] == "invalid_input" and "webhook_url" in r.json()["message"]
    assert api.job_rows() == 0 and api.stored_files() == []
    r = api.submit(scan_zip, webhook_url="HTTP://127.0.0.1:9/a b")
    assert r.status_code == 202, r.text
    assert api.store.job(r.json()["job_id"])["webhook_url"] == "http://127.0.0.1:9/a%20b"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a\tb", "http://127.0.0.1:99999/x"])
def test_any_delivery_exception_is_a_failed_attempt_and_the_schedule_ends(insecure, scan_zip, url):
    api = Api(insecure)
    worker = Worker(insecure, TEST_CONFIG)
    job_id = api.submit(scan_zip, webhook_url="http://127.0.0.1:9/hook").json()["job_id"]
    api.store._conn().execute("UPDATE jobs SET webhook_url = ? WHERE id = ?", (url, job_id))  # stored before the fix
    worker.run_once()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and api.status(job_id).json()["webhook"]["attempts"] < 3:
        worker.deliver_due()
        time.sleep(0.06)
    time.sleep(0.1)
    assert worker.deliver_due() == 0  # 1 try + 2 retries, then nothing is due any more
    log = api.store.attempts_log(job_id)
    assert len(log) == 3 and all(a["status_code"] is None and a["error"] for a in log), log
    assert api.store._one("SELECT next_attempt_at FROM webhook_deliveries")["next_attempt_at"] is None


# -- 4. 500 instead of 400 -----------------------------------------------------------------------------------
BAD_URLS = ["https://example.org:99999/h", "https://example.org:abc/h", "https://example.org:-1/h",
            "https://[::1/h", "https://[zz]/h", "https://example.org:0/h"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_port_or_broken_ipv6_is_400(api, scan_zip, url):
    api.client = TestClient(api.app, raise_server_exceptions=False)
    r = api.submit(scan_zip, webhook_url=url)
    assert r.status_code == 400 and r.json()["error"] == "invalid_input", r.text
    assert "webhook_url" in r.json()["message"]
    assert api.job_rows() == 0 and api.stored_files() == []


def portal_client(api: Api) -> tuple[TestClient, str]:
    """A TestClient signed in to the portal as a user of alice's account, and the session's CSRF token."""
    from biqe_lab.api.users import Users

    Users(api.store).create("alice", "ann@alice.example", PASSWORD)
    client = TestClient(api.app, raise_server_exceptions=False)
    form = client.get("/portal/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = client.post("/portal/login", data={"email": "ann@alice.example", "password": PASSWORD,
                                                "csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/portal/jobs")
    return client, re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.mark.parametrize("url", ["https://example.org:99999/h", "https://[zz]/h"])
def test_bad_port_in_the_portal_form_is_400(api, scan_zip, url):
    client, csrf = portal_client(api)
    r = client.post("/portal/jobs", data={"csrf_token": csrf, "webhook_url": url, "pdf_format": "none"},
                    files={"scan_zip": ("scan.zip", scan_zip, "application/zip")})
    assert r.status_code == 400, r.text[:500]
    assert "webhook_url" in r.text
    assert api.job_rows() == 0 and api.stored_files() == []


# -- 5. expiry counts from finished_at -----------------------------------------------------------------------
def test_result_lives_its_full_time_after_finished_at(settings, scan_zip):
    settings = replace(settings, result_ttl_hours=1.0)
    api = Api(settings)
    worker = Worker(settings, TEST_CONFIG)
    job_id = api.submit(scan_zip).json()["job_id"]
    queued_since = utcnow() - timedelta(hours=2)  # queued for two hours: longer than the TTL
    api.store._conn().execute("UPDATE jobs SET created_at = ?, expires_at = ? WHERE id = ?",
                              (iso(queued_since), iso(queued_since + timedelta(hours=1)), job_id))
    assert worker.run_once()
    status = api.status(job_id).json()
    assert status["state"] == "done" and status["result_expired"] is False and "result_url" in status
    ttl = parse_iso(status["expires_at"]) - parse_iso(status["finished_at"])
    assert abs(ttl.total_seconds() - 3600) < 1, status
    assert api.client.get(f"/v1/process-scan/{job_id}/result", headers=api.headers()).status_code == 200
    assert worker.sweep() == 0 and (settings.jobs_dir / job_id / "result.zip").is_file()


def test_a_cancelled_job_expires_from_its_cancellation(settings, scan_zip):
    api = Api(replace(settings, result_ttl_hours=1.0))
    job_id = api.submit(scan_zip).json()["job_id"]
    queued_since = utcnow() - timedelta(hours=2)
    api.store._conn().execute("UPDATE jobs SET created_at = ?, expires_at = ? WHERE id = ?",
                              (iso(queued_since), iso(queued_since + timedelta(hours=1)), job_id))
    body = api.client.delete(f"/v1/process-scan/{job_id}", headers=api.headers()).json()
    assert abs((parse_iso(body["expires_at"]) - parse_iso(body["finished_at"])).total_seconds() - 3600) < 1


# -- 6. no server paths in error bodies ----------------------------------------------------------------------
def test_error_bodies_name_the_file_inside_the_archive_only(api):
    for data in (b"\x89PNG\r\n\x1a\n broken", b"not an image at all"):
        r = api.submit(make_zip({"scans/p1.png": data}))
        assert r.status_code == 400 and r.json()["error"] == "bad_image", r.text
        assert r.json()["details"]["file"] == "scans/p1.png"
        assert "scans/p1.png" in r.json()["message"]
        assert str(api.settings.data_dir.resolve()) not in r.text and str(api.settings.data_dir) not in r.text
        assert "/tmp" not in r.text and "upload-" not in r.text
    assert api.job_rows() == 0 and api.stored_files() == []


def test_a_failed_jobs_error_message_names_no_server_path(api, worker, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    (api.settings.jobs_dir / job_id / "input" / "p1.png").write_bytes(b"garbage, not a PNG")
    worker.run_once()
    status = api.status(job_id).json()
    assert status["state"] == "failed" and "p1.png" in status["error_message"], status
    assert str(api.settings.data_dir) not in status["error_message"]
    assert str(api.settings.data_dir.resolve()) not in status["error_message"]


# -- 7. SSRF guard gaps --------------------------------------------------------------------------------------
REFUSED_V6 = {
    "6to4 of 192.168.1.1": "2002:c0a8:101::1",
    "6to4 of 10.0.0.1": "2002:a00:1::",
    "6to4 of 127.0.0.1": "2002:7f00:1::1",
    "6to4 of 169.254.169.254": "2002:a9fe:a9fe::1",
    "NAT64 of 10.0.0.1": "64:ff9b::a00:1",
    "NAT64 of 127.0.0.1": "64:ff9b::7f00:1",
    "IPv4-mapped 127.0.0.1": "::ffff:127.0.0.1",
    "IPv4-compatible 10.0.0.1": "::10.0.0.1",
    "Teredo": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "unique local": "fd00::1",
}


@pytest.mark.parametrize("name", list(REFUSED_V6))
def test_ipv6_forms_that_embed_a_private_ipv4_are_refused(name):
    from biqe_lab.api.validation import check_webhook_url

    with pytest.raises(InputError, match="refused"):
        check_webhook_url(f"https://[{REFUSED_V6[name]}]/hook", allow_insecure=False)


@pytest.mark.parametrize("address", ["2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808", "8.8.8.8"])
def test_public_addresses_and_their_transition_forms_pass(address):
    from biqe_lab.api.validation import check_webhook_url

    literal = f"[{address}]" if ":" in address else address
    assert check_webhook_url(f"https://{literal}/hook", allow_insecure=False) == f"https://{literal}/hook"


def test_the_api_refuses_a_6to4_webhook(api, scan_zip):
    r = api.submit(scan_zip, webhook_url="https://[2002:c0a8:101::1]/hook")
    assert r.status_code == 400 and "refused" in r.json()["message"]
    assert api.job_rows() == 0


def test_delivery_connects_to_the_address_that_was_checked(api, settings, scan_zip, monkeypatch):
    """The name is resolved once per attempt; the request goes to that address (Host and TLS name kept)."""
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1", "127.0.0.1"])  # a rebinding DNS server
    lookups = []

    def fake(host, *args, **kwargs):
        if host != "hooks.example":
            return real(host, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 443))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    job_id = api.submit(scan_zip).json()["job_id"]
    api.store._conn().execute("UPDATE jobs SET webhook_url = ? WHERE id = ?", ("https://hooks.example/in", job_id))
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    worker = Worker(settings, TEST_CONFIG)
    worker._client = httpx.Client(transport=httpx.MockTransport(handler))
    worker.run_once()
    assert worker.deliver_due() == 1
    assert len(lookups) == 1 and len(seen) == 1
    request = seen[0]
    assert request.url.host == "93.184.216.34" and request.url.path == "/in"
    assert request.headers["host"] == "hooks.example"
    assert request.extensions.get("sni_hostname") == "hooks.example"
    assert api.status(job_id).json()["webhook"]["delivered"] is True


# -- 8. smaller ---------------------------------------------------------------------------------------------
def test_data_dir_is_0700_and_the_database_and_results_0600(tmp_path, scan_zip):
    old = os.umask(0o022)
    try:
        settings = Settings(data_dir=tmp_path / "fresh" / "data", poll_interval_s=0.1)
        api = Api(settings)
        worker = Worker(settings, TEST_CONFIG)
        job_id = api.submit(scan_zip).json()["job_id"]
        worker.run_once()
    finally:
        os.umask(old)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(settings.data_dir) == 0o700
    assert mode(settings.jobs_dir) == 0o700 and mode(settings.tmp_dir) == 0o700
    database = [p for p in settings.data_dir.iterdir() if p.name.startswith("biqe.sqlite3")]
    assert len(database) >= 2 and all(mode(p) == 0o600 for p in database), [(p.name, oct(mode(p))) for p in database]
    assert mode(settings.jobs_dir / job_id / "result.zip") == 0o600


def test_an_existing_world_readable_database_is_made_private(tmp_path):
    from biqe_lab.api.store import Store

    path = tmp_path / "old.sqlite3"
    Store(path).dispose()
    path.chmod(0o644)
    Store(path).dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_serve_restarts_a_dead_worker_with_back_off(caplog):
    from biqe_lab.api.server import WorkerSupervisor

    sh = shutil.which("sh")
    supervisor = WorkerSupervisor(1, command=[sh, "-c", "exit 3"], backoff=(0.1, 0.3), poll_s=0.02, stable_s=60)
    caplog.set_level(logging.INFO, logger="biqe_lab.serve")
    supervisor.start()
    try:
        assert wait_until(lambda: supervisor.restarts >= 3, timeout=10)
    finally:
        supervisor.stop()
    assert all(child.poll() is not None for child in supervisor.children)  # reaped, none left running
    messages = [r.getMessage() for r in caplog.records if r.name == "biqe_lab.serve"]
    exits = [m for m in messages if "exited with code 3" in m]
    assert len(exits) >= 3 and "restarting it in 0.1 s" in exits[0] and "restarting it in 0.3 s" in exits[1], messages
    assert any("restarted" in m for m in messages)
    gaps = [b - a for a, b in zip(supervisor.started_at, supervisor.started_at[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.3, gaps


def test_serve_stops_a_healthy_worker_child(caplog):
    from biqe_lab.api.server import WorkerSupervisor

    supervisor = WorkerSupervisor(2, command=[shutil.which("sleep"), "60"], poll_s=0.02)
    supervisor.start()
    time.sleep(0.2)
    assert supervisor.restarts == 0 and all(child.poll() is None for child in supervisor.children)
    supervisor.stop()
    assert all(child.poll() is not None for child in supervisor.children)


def test_a_worker_that_loses_its_job_to_another_says_so(api, settings, scan_zip, caplog):
    job_id = api.submit(scan_zip).json()["job_id"]
    slow = Worker(settings, TEST_CONFIG, worker_id="slow-worker")
    job = api.store.claim(slow.worker_id)
    # its heartbeat went stale: another worker's maintenance re-queued the job and that worker took it
    api.store._conn().execute("UPDATE jobs SET heartbeat_at = 0 WHERE id = ?", (job_id,))
    other = Worker(settings, TEST_CONFIG, worker_id="other-worker")
    other.maintenance()
    assert api.store.claim(other.worker_id)["id"] == job_id
    caplog.set_level(logging.INFO, logger="biqe_lab.worker")
    assert slow.process(job) is None
    messages = " ".join(r.getMessage() for r in caplog.records if r.name == "biqe_lab.worker")
    assert "stopped: cancelled" not in messages
    assert "other-worker" in messages and "heartbeat" in messages, messages
    assert api.store.job(job_id)["state"] == "processing" and api.store.job(job_id)["worker_id"] == "other-worker"


def test_a_worker_whose_job_was_cancelled_says_so(api, settings, scan_zip, caplog):
    job_id = api.submit(scan_zip).json()["job_id"]
    worker = Worker(settings, TEST_CONFIG, worker_id="w")
    job = api.store.claim(worker.worker_id)
    api.client.delete(f"/v1/process-scan/{job_id}", headers=api.headers())
    caplog.set_level(logging.INFO, logger="biqe_lab.worker")
    assert worker.process(job) is None
    messages = " ".join(r.getMessage() for r in caplog.records if r.name == "biqe_lab.worker")
    assert "cancelled by its owner" in messages, messages


def test_result_url_is_hidden_once_the_result_expired(api, worker, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    worker.run_once()
    assert "result_url" in api.status(job_id).json()
    api.store._conn().execute("UPDATE jobs SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?", (job_id,))
    status = api.status(job_id).json()  # past expires_at, not swept yet
    assert status["result_expired"] is True and "result_url" not in status, status
    assert worker.sweep() == 1
    status = api.status(job_id).json()
    assert status["state"] == "done" and status["result_expired"] is True and "result_url" not in status


def test_a_second_scan_zip_field_is_400(api, scan_zip):
    r = api.client.post("/v1/process-scan", headers=api.headers(), data={"pdf_format": "none"},
                        files=[("scan_zip", ("a.zip", scan_zip, "application/zip")),
                               ("scan_zip", ("b.zip", scan_zip, "application/zip"))])
    assert r.status_code == 400 and r.json()["error"] == "invalid_input" and "scan_zip" in r.json()["message"]
    assert api.job_rows() == 0 and api.stored_files() == []


def test_a_repeated_option_field_is_400(api, scan_zip):
    body = _multipart([("pdf_format", None, b"none"), ("llm_tier", None, b"cheap"), ("llm_tier", None, b"best"),
                       ("scan_zip", "s.zip", scan_zip)])
    r = api.client.post("/v1/process-scan", content=body,
                        headers={**api.headers(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert r.status_code == 400 and "llm_tier" in r.json()["message"], r.text
    assert api.job_rows() == 0 and api.stored_files() == []


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def test_the_key_created_page_is_post_redirect_get_and_shows_the_key_once(api):
    client, csrf = portal_client(api)
    before = len(api.store.list_keys("alice"))
    r = client.post("/portal/settings/api-keys", data={"label": "archive-ci", "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/settings/api-keys"), r.status_code
    assert "biqe_live_" not in r.headers["location"]
    page = client.get(r.headers["location"])
    keys = re.findall(r"biqe_live_[A-Za-z0-9_-]{40}", page.text)
    assert page.status_code == 200 and len(set(keys)) == 1, page.text[:300]
    assert api.client.get("/v1/usage", headers={"X-API-Key": keys[0]}).status_code == 200
    again = client.get(r.headers["location"])  # a reload: no second key, and the key is not shown again
    assert again.status_code == 200 and keys[0] not in again.text
    assert len(api.store.list_keys("alice")) == before + 1


# -- found by the fuzz test (tests/test_api_fuzz.py) -------------------------------------------------------------
def test_a_zip_with_corrupt_compressed_data_is_400(api, page_files):
    data = bytearray(make_zip({"p1.png": page_files["p1.png"]}))
    start = 30 + len("p1.png")  # the entry's deflate stream follows its local header
    for i in range(start + 2, start + 60):
        data[i] ^= 0x5A
    r = api.submit(bytes(data))
    assert r.status_code == 400 and r.json()["error"] == "invalid_input" and "damaged" in r.json()["message"], r.text
    assert api.job_rows() == 0 and api.stored_files() == []


def test_a_tiff_with_more_frames_than_pages_allowed_is_413_from_its_headers(api):
    r = api.submit(make_zip({"book.tif": tiff_frames(api.settings.max_pages + 2, 16)}))
    assert r.status_code == 413 and r.json()["error"] == "archive_too_large" and "book.tif" in r.json()["message"]
    assert api.job_rows() == 0 and api.stored_files() == []
