"""The job API in-process: spec fields, auth, bad input (nothing stored), isolation, cancel, dead workers,
the sweeper, idempotency and webhook retries on a loopback receiver. Pages are tiny synthetic ones with
their PAGE ground truth (ground-truth layout + tesseract), so no test here runs kraken."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from biqe_lab.api.app import create_app
from biqe_lab.api.settings import Settings
from biqe_lab.api.worker import Worker
from biqe_lab.errors import InputError
from biqe_lab.pipeline import PipelineConfig

from conftest import WebhookReceiver, claim_concurrently

TEST_CONFIG = PipelineConfig(layout="ground-truth", engine="tesseract", languages=("eng",))


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page_files(tmp_path_factory) -> dict[str, bytes]:
    """One tiny synthetic page (PNG) and its PAGE ground truth."""
    from biqe_lab.export import render_page as render_export
    from biqe_lab.synthetic import ground_truth_page, render_page

    folder = tmp_path_factory.mktemp("page")
    image, lines = render_page(["Hello world", "a second line"], seed=1, width=500)
    path = folder / "p1.png"
    image.save(path, dpi=(300, 300))
    xml = render_export(ground_truth_page(path, lines), "pagexml")
    return {"p1.png": path.read_bytes(), "p1.xml": xml}


def make_zip(entries: dict[str, bytes], **kwargs) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, **kwargs) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def scan_zip(page_files) -> bytes:
    return make_zip(page_files)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_upload_mb=1, max_pages=3, webhook_backoff=(0.3, 0.6, 0.9),
                    allow_insecure_webhooks=False, heartbeat_interval_s=0.2, heartbeat_timeout_s=30,
                    max_attempts=2, poll_interval_s=0.1, webhook_timeout_s=2)


class Api:
    """A TestClient plus the store, and two accounts with one key each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.client = TestClient(self.app)
        self.store = self.app.state.store
        self.account = self.store.create_account("alice")
        self.key_record, self.key = self.store.create_key("alice", "tests")
        self.other = self.store.create_account("bob")
        _, self.other_key = self.store.create_key("bob", "tests")

    def headers(self, key=None) -> dict[str, str]:
        return {"X-API-Key": key or self.key}

    def submit(self, data: bytes, key=None, filename="scan.zip", headers=None, **form):
        form.setdefault("pdf_format", "none")
        return self.client.post("/v1/process-scan", headers={**self.headers(key), **(headers or {})},
                                files={"scan_zip": (filename, data, "application/zip")}, data=form)

    def status(self, job_id, key=None):
        return self.client.get(f"/v1/process-scan/{job_id}", headers=self.headers(key))

    def job_rows(self) -> int:
        return self.store._one("SELECT COUNT(*) AS n FROM jobs")["n"]

    def stored_files(self) -> list[Path]:
        return [p for d in (self.settings.jobs_dir, self.settings.tmp_dir) for p in d.rglob("*")]


@pytest.fixture
def api(settings) -> Api:
    return Api(settings)


@pytest.fixture
def worker(settings, api) -> Worker:
    return Worker(settings, TEST_CONFIG, worker_id="test-worker")


# -- the happy path and the spec's fields --------------------------------------------------------------
def test_submit_process_and_fetch_result(api, worker, scan_zip):
    r = api.submit(scan_zip, llm_tier="cheap", preset="generic_historical")
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"job_id", "state", "page_count", "created_at", "expires_at", "status_url", "result_url"}
    assert body["state"] == "queued" and body["page_count"] == 1
    assert body["status_url"].endswith(f"/v1/process-scan/{body['job_id']}")
    assert body["result_url"] == body["status_url"] + "/result"
    from biqe_lab.api.store import parse_iso

    assert (parse_iso(body["expires_at"]) - parse_iso(body["created_at"])).total_seconds() == 7 * 24 * 3600

    status = api.status(body["job_id"]).json()
    assert status["state"] == "queued" and "result_url" not in status
    for key in ("current_step", "started_at", "finished_at", "error_message", "warning_message"):
        assert key in status and status[key] is None
    assert api.client.get(f"/v1/process-scan/{body['job_id']}/result", headers=api.headers()).json()["error"] \
        == "result_not_ready"

    assert worker.run_once() is True
    status = api.status(body["job_id"]).json()
    assert status["state"] == "done", status
    assert status["result_url"] == body["result_url"]
    assert status["started_at"] and status["finished_at"] and status["error_message"] is None
    assert status["warning_message"] is None  # every requested step ran, the cheap correction tier included
    assert "webhook" not in status

    r = api.client.get(f"/v1/process-scan/{body['job_id']}/result", headers=api.headers())
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert {"page/p1.xml", "alto/p1.xml", "document.json"} <= set(archive.namelist())
    document = json.loads(archive.read("document.json"))
    correction = [record for record in document["processing"] if record["step"] == "correction"]
    assert len(correction) == 1 and correction[0]["settings"]["preset"] == "generic_historical", correction

    usage = api.client.get("/v1/usage", headers=api.headers()).json()
    assert usage["total_pages"] == 1 and usage["months"][0]["jobs"] == 1
    assert worker.run_once() is False  # the queue is empty


def test_defaults_are_the_pipeline_s_and_auto_says_which_preset_it_chose(api, worker, scan_zip):
    from biqe_lab import defaults

    job_id = api.submit(scan_zip).json()["job_id"]  # no llm_tier, no preset: the one set of defaults
    assert worker.run_once() is True
    status = api.status(job_id).json()
    assert status["state"] == "done", status
    assert (status["llm_tier"], status["preset"]) == (defaults.DEFAULT_CORRECTION, "auto")
    assert status["warning_message"].startswith("preset auto chose "), status["warning_message"]
    archive = zipfile.ZipFile(io.BytesIO(api.client.get(f"/v1/process-scan/{job_id}/result",
                                                        headers=api.headers()).content))
    record = next(r for r in json.loads(archive.read("document.json"))["processing"] if r["step"] == "correction")
    assert record["settings"]["preset"] == "auto" and record["settings"]["preset_choice"]["final"]["preset"] in \
        defaults.preset_names()


def test_bearer_header_and_missing_invalid_revoked_keys(api, scan_zip):
    assert api.client.get("/v1/usage", headers={"Authorization": f"Bearer {api.key}"}).status_code == 200
    for headers in ({}, {"X-API-Key": "biqe_live_nope"}, {"X-API-Key": "garbage"},
                    {"Authorization": "Bearer biqe_live_nope"}):
        r = api.client.get("/v1/usage", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", headers
    assert api.store.list_keys("alice")[0]["last_used_at"] is not None
    api.store.revoke_key(api.key_record["id"])
    r = api.submit(scan_zip)
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    assert api.job_rows() == 0


def test_account_isolation_is_404(api, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        r = api.client.request(method, f"/v1/process-scan/{job_id}{path}", headers=api.headers(api.other_key))
        assert r.status_code == 404 and r.json()["error"] == "not_found", (method, path)
    assert api.status(job_id).json()["state"] == "queued"  # bob's DELETE did nothing
    assert api.status("00000000-0000-0000-0000-000000000000").status_code == 404


# -- bad input: each with its own message, and nothing stored -----------------------------------------
def _encrypted_zip(page_files) -> bytes:
    data = bytearray(make_zip({"p1.png": page_files["p1.png"]}, ))
    # set the "encrypted" flag bit in the local header and the central directory entry
    data[6] |= 1
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 1
    return bytes(data)


BAD_INPUTS = {
    "not_a_zip": (lambda f: b"this is not a zip at all", {}, 400, "invalid_input", "not a readable ZIP"),
    "encrypted": (_encrypted_zip, {}, 400, "unsafe_archive", "password-protected"),
    "zip_bomb": (lambda f: make_zip({"bomb.png": b"\0" * (20 * 2**20)}), {}, 413, "archive_too_large", "zip bomb"),
    "dotdot": (lambda f: make_zip({"../evil.png": f["p1.png"]}), {}, 400, "unsafe_archive", ".."),
    "absolute": (lambda f: make_zip({"/etc/evil.png": f["p1.png"]}), {}, 400, "unsafe_archive", "absolute"),
    "no_images": (lambda f: make_zip({"readme.txt": b"hi"}), {}, 400, "no_images", "no page image"),
    "corrupt_image": (lambda f: make_zip({"p1.png": b"\x89PNG\r\n\x1a\n broken"}), {}, 400, "bad_image", "p1.png"),
    "too_many_pages": (lambda f: make_zip({f"p{i}.png": f["p1.png"] for i in range(4)}), {}, 413,
                       "archive_too_large", "page images"),
    "too_large": (lambda f: make_zip({"p1.png": f["p1.png"], "noise.xml": __import__("os").urandom(1_200_000)}),
                  {}, 413, "upload_too_large", "MB"),
    "llm_tier": (None, {"llm_tier": "premium"}, 400, "invalid_input", "llm_tier"),
    "pdf_format": (None, {"pdf_format": "pdfa-9z"}, 400, "invalid_input", "pdf_format"),
    "preset": (None, {"preset": "cookbook"}, 400, "invalid_input", "preset"),
    "steps_unknown": (None, {"pipeline_steps": "layout,magic"}, 400, "invalid_input", "magic"),
    "steps_order": (None, {"pipeline_steps": "recognition,layout"}, 400, "invalid_input", "order"),
    "steps_dependency": (None, {"pipeline_steps": "layout,correction"}, 400, "invalid_input", "needs 'recognition'"),
    "webhook_http": (None, {"webhook_url": "http://example.org/hook"}, 400, "invalid_input", "HTTPS"),
    "webhook_loopback": (None, {"webhook_url": "https://127.0.0.1/hook"}, 400, "invalid_input", "loopback"),
    "webhook_private": (None, {"webhook_url": "https://10.1.2.3/hook"}, 400, "invalid_input", "private"),
    "webhook_link_local": (None, {"webhook_url": "https://169.254.169.254/latest"}, 400, "invalid_input", "link-local"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_nothing_is_stored(api, page_files, scan_zip, case):
    make, form, status, code, words = BAD_INPUTS[case]
    r = api.submit(make(page_files) if make else scan_zip, **form)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and words in body["message"], body
    assert api.job_rows() == 0 and api.stored_files() == []


def test_missing_scan_zip_is_400_json(api):
    r = api.client.post("/v1/process-scan", headers=api.headers(), data={"llm_tier": "cheap"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_input" and "scan_zip" in r.json()["message"]


def test_valid_step_subsets(api, worker, scan_zip):
    job_id = api.submit(scan_zip, pipeline_steps="layout,export").json()["job_id"]
    worker.run_once()
    status = api.status(job_id).json()
    assert status["state"] == "done" and status["pipeline_steps"] == ["layout", "export"]
    assert "no text" in status["warning_message"] and "correction" not in status["warning_message"]
    result = api.client.get(f"/v1/process-scan/{job_id}/result", headers=api.headers())
    document = json.loads(zipfile.ZipFile(io.BytesIO(result.content)).read("document.json"))
    assert [r["step"] for r in document["processing"]] == ["layout", "export"]  # the recognizer never ran
    assert all(not line["variants"] for page in document["pages"] for line in page["lines"])
    job_id = api.submit(scan_zip, pipeline_steps="layout,recognition").json()["job_id"]
    worker.run_once()
    result = api.client.get(f"/v1/process-scan/{job_id}/result", headers=api.headers())
    archive = zipfile.ZipFile(io.BytesIO(result.content))
    assert archive.namelist() == ["document.json"]
    document = json.loads(archive.read("document.json"))
    assert [r["step"] for r in document["processing"]] == ["layout", "recognition"]
    assert all(line["variants"][0]["origin"] == "htr" for page in document["pages"] for line in page["lines"])


def test_best_tier_without_an_endpoint_runs_as_balanced_and_says_so(api, worker, scan_zip, monkeypatch):
    for name in ("BIQE_LLM_BASE_URL", "BIQE_LLM_MODEL", "BIQE_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    job_id = api.submit(scan_zip, llm_tier="best", preset="english_19_20c_letters").json()["job_id"]
    worker.run_once()
    status = api.status(job_id).json()
    assert status["state"] == "done" and (status["llm_tier"], status["preset"]) == ("best", "english_19_20c_letters")
    assert status["warning_message"].count("ran as 'balanced'") == 1, status["warning_message"]


def test_unknown_preset_names_the_shipped_ones(api, scan_zip):
    r = api.submit(scan_zip, preset="letters")
    assert r.status_code == 400 and "english_19_20c_letters" in r.json()["message"]


# -- idempotency -------------------------------------------------------------------------------------
def test_idempotency_key_returns_the_same_job(api, scan_zip, page_files):
    first = api.submit(scan_zip, headers={"Idempotency-Key": "k1"})
    again = api.submit(scan_zip, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"] and api.job_rows() == 1
    assert len(list(api.settings.jobs_dir.iterdir())) == 1
    other = api.submit(scan_zip, headers={"Idempotency-Key": "k1"}, llm_tier="best")
    assert other.status_code == 409 and api.job_rows() == 1
    assert api.submit(scan_zip, key=api.other_key, headers={"Idempotency-Key": "k1"}).json()["job_id"] \
        != first.json()["job_id"]  # keys are per account


# -- cancel --------------------------------------------------------------------------------------------
def test_cancel_queued_and_running_jobs(api, worker, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    r = api.client.delete(f"/v1/process-scan/{job_id}", headers=api.headers())
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert worker.run_once() is False
    r = api.client.delete(f"/v1/process-scan/{job_id}", headers=api.headers())
    assert r.status_code == 409 and r.json()["error"] == "conflict"

    job_id = api.submit(scan_zip).json()["job_id"]
    job = api.store.claim(worker.worker_id)  # the worker took it ...
    assert api.client.delete(f"/v1/process-scan/{job_id}", headers=api.headers()).json()["state"] == "cancelled"
    assert worker.process(job) is None  # ... and stops at the next step; its outcome is dropped
    status = api.status(job_id).json()
    assert status["state"] == "cancelled" and "result_url" not in status
    assert not (api.settings.jobs_dir / job_id / "result.zip").exists()
    assert api.client.get("/v1/usage", headers=api.headers()).json()["total_pages"] == 0


# -- failures, dead workers, restarts ----------------------------------------------------------------
def test_failed_job_has_error_message_and_is_not_billed(api, settings, scan_zip):
    broken = Worker(settings, PipelineConfig(layout="ground-truth", engine="kraken", model="/nonexistent.mlmodel"))
    job_id = api.submit(scan_zip).json()["job_id"]
    broken.run_once()
    status = api.status(job_id).json()
    assert status["state"] == "failed" and status["error_message"] and "result_url" not in status
    assert api.client.get(f"/v1/process-scan/{job_id}/result", headers=api.headers()).status_code == 404
    assert api.client.get("/v1/usage", headers=api.headers()).json() == {
        "account_id": api.account["id"], "total_pages": 0, "months": []}


def test_dead_worker_job_is_requeued_then_failed(api, worker, settings, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    for attempt in (1, 2):
        job = api.store.claim(f"doomed-{attempt}")  # a worker claims it and dies: no more heartbeats
        assert job["id"] == job_id and job["attempts"] == attempt
        api.store._conn().execute("UPDATE jobs SET heartbeat_at = heartbeat_at - 3600 WHERE id = ?", (job_id,))
        worker.maintenance()
        state = api.status(job_id).json()
        assert state["state"] == ("queued" if attempt == 1 else "failed"), state
    assert "stopped 2 times" in state["error_message"]
    assert api.client.get("/v1/usage", headers=api.headers()).json()["total_pages"] == 0


def test_dead_worker_job_is_redone(api, worker, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    api.store.claim("doomed")
    api.store._conn().execute("UPDATE jobs SET heartbeat_at = 0 WHERE id = ?", (job_id,))
    assert worker.run_once() is True  # maintenance re-queues it, then this worker runs it
    assert api.status(job_id).json()["state"] == "done"


def test_a_restarted_server_keeps_its_jobs(api, settings, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    api.client.close()
    restarted = TestClient(create_app(settings))
    r = restarted.get(f"/v1/process-scan/{job_id}", headers=api.headers())
    assert r.status_code == 200 and r.json()["state"] == "queued"


def test_worker_shutdown_hands_the_job_back(api, worker, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    job = api.store.claim(worker.worker_id)
    worker.stop()
    assert worker.process(job)["state"] == "queued"
    row = api.store.job(job_id)
    assert row["attempts"] == 0 and row["worker_id"] is None


def test_only_allowed_transitions(api, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    assert api.store.transition(job_id, "done") is None  # queued -> done is not in the table
    with pytest.raises(ValueError):
        api.store.transition(job_id, "bogus")
    assert api.store.claim("w1")["state"] == "processing"
    assert api.store.claim("w2") is None  # one job, one claim


def test_sweeper_deletes_expired_results(api, worker, scan_zip):
    job_id = api.submit(scan_zip).json()["job_id"]
    worker.run_once()
    assert (api.settings.jobs_dir / job_id / "result.zip").is_file()
    assert worker.sweep() == 0
    api.store._conn().execute("UPDATE jobs SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?", (job_id,))
    assert worker.sweep() == 1
    assert not (api.settings.jobs_dir / job_id).exists()
    r = api.client.get(f"/v1/process-scan/{job_id}/result", headers=api.headers())
    assert r.status_code == 404 and r.json()["error"] == "result_expired"
    assert api.status(job_id).json()["result_expired"] is True


# -- webhooks ------------------------------------------------------------------------------------------
def verify(secret: str, headers: dict, body: bytes) -> bool:
    """The receiver's check, as in the README."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers["X-BIQE-Signature"]):
        return False
    parts = dict(p.split("=", 1) for p in headers["X-BIQE-Signature-V2"].split(","))
    v2 = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(v2, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def test_webhook_retries_follow_the_schedule_and_verify(tmp_path, page_files, scan_zip):
    settings = Settings(data_dir=tmp_path / "data", webhook_backoff=(0.3, 0.6, 0.9), allow_insecure_webhooks=True,
                        poll_interval_s=0.05, webhook_timeout_s=2)
    api = Api(settings)
    worker = Worker(settings, TEST_CONFIG)
    receiver = WebhookReceiver(failures=2)
    try:
        job_id = api.submit(scan_zip, webhook_url=receiver.url).json()["job_id"]
        assert api.status(job_id).json()["webhook"] == {"attempts": 0, "last_status": None, "delivered": False}
        worker.run_once()
        deadline = time.monotonic() + 15
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            worker.deliver_due()
            time.sleep(0.02)
    finally:
        receiver.close()
    assert len(receiver.requests) == 3
    (t1, h1, b1), (t2, h2, b2), (t3, h3, b3) = receiver.requests
    # back-off 0.3 s, then 0.6 s: never early; late by up to 5 s on a loaded 2-core machine
    assert 0.3 <= t2 - t1 < 0.3 + 5 and 0.6 <= t3 - t2 < 0.6 + 5
    assert b1 == b2 == b3 and h1["X-BIQE-Delivery"] == h2["X-BIQE-Delivery"] == h3["X-BIQE-Delivery"]
    payload = json.loads(b3)
    assert payload == {"job_id": job_id, "state": "done", "page_count": 1,
                       "result_url": f"http://testserver/v1/process-scan/{job_id}/result"}
    assert h3["Content-Type"] == "application/json" and h3["X-BIQE-Event"] == "job.completed"
    secret = api.account["webhook_secret"]
    assert len(secret) == 64 and all(verify(secret, h, b) for _, h, b in receiver.requests)
    assert not verify("0" * 64, h3, b3)
    assert api.status(job_id).json()["webhook"] == {"attempts": 3, "last_status": 200, "delivered": True}
    log = api.store.attempts_log(job_id)
    assert [a["status_code"] for a in log] == [500, 500, 200] and log[0]["error"] == "HTTP 500"


def test_webhook_gives_up_after_the_schedule(tmp_path, scan_zip):
    settings = Settings(data_dir=tmp_path / "data", webhook_backoff=(0.05, 0.05), allow_insecure_webhooks=True,
                        webhook_timeout_s=1)
    api = Api(settings)
    worker = Worker(settings, PipelineConfig(layout="ground-truth", engine="kraken", model="/nonexistent"))
    job_id = api.submit(scan_zip, webhook_url="http://127.0.0.1:9/refused").json()["job_id"]
    worker.run_once()  # fails: job.failed event, no result_url
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and api.status(job_id).json()["webhook"]["attempts"] < 3:
        worker.deliver_due()
        time.sleep(0.02)
    time.sleep(0.2)
    assert worker.deliver_due() == 0  # 1 try + 2 retries, then nothing more is due
    log = api.store.attempts_log(job_id)
    assert len(log) == 3 and all(a["status_code"] is None and "Connect" in a["error"] for a in log)
    delivery = api.store._one("SELECT payload, event FROM webhook_deliveries")
    assert delivery["event"] == "job.failed" and "result_url" not in json.loads(delivery["payload"])
    assert api.status(job_id).json()["webhook"] == {"attempts": 3, "last_status": None, "delivered": False}


# -- service endpoints, settings, CLI -----------------------------------------------------------------
def test_healthz_and_docs(api):
    assert api.client.get("/healthz").json()["status"] == "ok"
    assert api.client.get("/docs").status_code == 200
    schema = api.client.get("/openapi.json").json()
    assert {"/v1/process-scan", "/v1/process-scan/{job_id}", "/v1/process-scan/{job_id}/result", "/v1/usage",
            "/healthz"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["JobCreated"]["examples"]


def test_settings_from_env(tmp_path):
    s = Settings.from_env({"BIQE_DATA_DIR": str(tmp_path), "BIQE_MAX_UPLOAD_MB": "7", "BIQE_MAX_PAGES": "9",
                           "BIQE_WEBHOOK_BACKOFF": "0.5,2", "BIQE_ALLOW_INSECURE_WEBHOOKS": "1"})
    assert (s.data_dir, s.max_upload_mb, s.max_pages, s.webhook_backoff, s.allow_insecure_webhooks) \
        == (tmp_path, 7, 9, (0.5, 2.0), True)
    d = Settings.from_env({})
    assert d.result_ttl_hours == 168 and d.webhook_backoff == (1, 5, 25, 125, 625) and not d.allow_insecure_webhooks
    assert d.data_dir == Path("./biqe-data") and d.public_url is None
    assert Settings.from_env({"BIQE_PUBLIC_URL": "https://ocr.example.org/biqe/"}).public_url \
        == "https://ocr.example.org/biqe"
    for bad in ("ftp://x", "not a url", "https://x/?q=1"):
        with pytest.raises(InputError, match="BIQE_PUBLIC_URL"):
            Settings.from_env({"BIQE_PUBLIC_URL": bad})


def test_public_url_wins_over_the_host_header(settings, scan_zip):
    """Behind a proxy the operator's BIQE_PUBLIC_URL names the URLs, not whatever Host a client sent."""
    from dataclasses import replace

    api = Api(replace(settings, public_url="https://ocr.example.org/biqe"))
    body = api.submit(scan_zip, headers={"Host": "evil.example"}).json()
    assert body["status_url"] == f"https://ocr.example.org/biqe/v1/process-scan/{body['job_id']}"
    assert body["result_url"] == body["status_url"] + "/result"


def test_cli_accounts_and_keys(tmp_path, monkeypatch):
    from biqe_lab.cli import main

    monkeypatch.setenv("BIQE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    out = runner.invoke(main, ["accounts", "create", "acme"])
    assert out.exit_code == 0 and "webhook_secret" in out.output
    secret = out.output.split("webhook_secret: ")[1].strip()
    assert runner.invoke(main, ["accounts", "secret", "acme"]).output.strip() == secret
    rotated = runner.invoke(main, ["accounts", "secret", "acme", "--rotate"]).output.strip()
    assert len(rotated) == 64 and rotated != secret
    created = runner.invoke(main, ["keys", "create", "--account", "acme", "--label", "ci"])
    key = created.stdout.strip()
    assert created.exit_code == 0 and key.startswith("biqe_live_") and len(key) > 30
    listed = runner.invoke(main, ["keys", "list", "--account", "acme"]).output
    assert "ci" in listed and key[:16] in listed and key not in listed and "active" in listed
    key_id = listed.split()[0]
    app = TestClient(create_app(Settings.from_env()))
    assert app.get("/v1/usage", headers={"X-API-Key": key}).status_code == 200
    assert runner.invoke(main, ["keys", "revoke", key_id]).exit_code == 0
    assert app.get("/v1/usage", headers={"X-API-Key": key}).status_code == 401
    assert "REVOKED" in runner.invoke(main, ["keys", "list"]).output
    assert runner.invoke(main, ["accounts", "create", "acme"]).exit_code == 2  # exists already


def test_streamed_upload_over_the_limit_leaves_nothing(settings):
    from biqe_lab.api.validation import UploadTooLargeError, stage_upload

    with pytest.raises(UploadTooLargeError):
        stage_upload(io.BytesIO(b"x" * (settings.max_upload_bytes + 1)), "big.zip", settings)
    assert list(settings.tmp_dir.iterdir()) == []


def test_concurrent_claims_take_each_job_once(api, scan_zip):
    job_ids = {api.submit(scan_zip).json()["job_id"] for _ in range(6)}
    claimed = claim_concurrently(api.store)
    assert sorted(claimed) == sorted(job_ids)


def test_readme_webhook_snippet_verifies_a_real_delivery(api, settings, scan_zip):
    """The receiver snippet of the README, run as written, against headers the worker sends."""
    from biqe_lab.api.worker import sign, sign_v2

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Verifying a webhook", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)
    secret, body, ts = api.account["webhook_secret"], b'{"job_id":"x","state":"done"}', str(int(time.time()))
    headers = {"X-BIQE-Signature": sign(secret, body), "X-BIQE-Signature-V2": sign_v2(secret, ts, body)}
    assert namespace["verify"](secret, headers, body)
    assert not namespace["verify"](secret, headers, body + b" ")
    old = str(int(time.time()) - 600)
    assert not namespace["verify"](secret, {**headers, "X-BIQE-Signature-V2": sign_v2(secret, old, body)}, body)


def test_the_api_starts_without_loading_pdf_or_model_libraries():
    """The choice lists come from biqe_lab.defaults: starting the app imports neither OCRmyPDF nor torch."""
    import subprocess
    import sys

    code = ("import sys; from biqe_lab.api.app import create_app; "
            "print(sorted(m for m in ('ocrmypdf', 'pikepdf', 'img2pdf', 'torch', 'kraken') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)
