"""The customer portal in real headless Chromium (Debian's, driven by Playwright) against the real server on
loopback with a worker: sign-in, API keys used against the API and revoked, the webhook secret revealed and
rotated, a real page uploaded, processed and downloaded, deliveries redelivered, usage; plus isolation between
accounts, CSRF refusals, sign-in throttling, sign-out and the phone layout. Screenshots go to
$BIQE_PORTAL_SCREENSHOTS (default: a pytest temp folder)."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import socket
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from click.testing import CliRunner

from biqe_lab.api.app import create_app
from biqe_lab.api.settings import Settings
from biqe_lab.api.store import Store
from biqe_lab.api.worker import Worker
from biqe_lab.cli import main as cli
from biqe_lab.pipeline import PipelineConfig

from conftest import DATASETS, WebhookReceiver

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# A real handwritten letter with 6 ground-truth lines: ground-truth layout + tesseract finish it in seconds.
LETTER_DIR = DATASETS / "stanford_memorials" / "data" / "by_yagmur_ozturk" / "Page7-8-Lettres247-248"
LETTER = "Lettre248"
CONFIG = PipelineConfig(layout="ground-truth", engine="tesseract", languages=("eng",), on_page_error="raise")
STEPS = "layout,recognition,export"  # no LLM correction: the test is about the portal, not the corrector
PASSWORD = "correct horse battery staple"
ALICE, BOB, CAROL = "alice@acme.example", "bob@globex.example", "carol@acme.example"


# -- the server, the worker and the browser (one each for the session) ------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Portal:
    base: str
    settings: Settings
    store: Store
    gate: threading.Event  # cleared: the worker claims no job (a queued job stays queued)

    def url(self, path: str) -> str:
        return self.base + path

    def key(self, account: str = "acme", label: str = "test") -> str:
        return self.store.create_key(account, label)[1]

    def api(self, method: str, path: str, key: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.url(path), headers={"X-API-Key": key}, timeout=30, **kwargs)


def _create_user(env: dict[str, str], account: str, email: str) -> None:
    result = CliRunner().invoke(cli, ["users", "create", "--account", account, "--email", email],
                                input=f"{PASSWORD}\n{PASSWORD}\n", env=env)
    assert result.exit_code == 0, result.output


# Module scope: the server and worker threads, the browser and its Playwright driver end with this file, so
# no later test forks a process (kraken's inference pool) beside them (a fork there once hung test_training).
@pytest.fixture(scope="module")
def portal(tmp_path_factory) -> Iterator[Portal]:
    import uvicorn

    settings = Settings(data_dir=tmp_path_factory.mktemp("portal") / "data", max_upload_mb=20, max_pages=5,
                        webhook_backoff=(0.5, 1.0), allow_insecure_webhooks=True, heartbeat_interval_s=0.5,
                        poll_interval_s=0.2, webhook_timeout_s=5)
    app = create_app(settings)
    store: Store = app.state.store
    store.create_account("acme")
    store.create_account("globex")
    env = {"BIQE_DATA_DIR": str(settings.data_dir)}
    for account, email in (("acme", ALICE), ("globex", BOB), ("acme", CAROL)):
        _create_user(env, account, email)

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server_thread = threading.Thread(target=server.run, daemon=True)
    server_thread.start()
    worker = Worker(settings, CONFIG, worker_id="portal-test")
    gate = threading.Event()
    gate.set()

    def work() -> None:
        while not worker.stopping.is_set():
            if not (gate.is_set() and worker.run_once()):
                worker.stopping.wait(settings.poll_interval_s)

    threads = [threading.Thread(target=work, daemon=True), threading.Thread(target=worker.delivery_loop, daemon=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and server_thread.is_alive(), "the portal server did not start"
        time.sleep(0.05)
    yield Portal(base=f"http://127.0.0.1:{port}", settings=settings, store=store, gate=gate)
    worker.stop()
    server.should_exit = True
    for thread in (*threads, server_thread):
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    playwright = playwright_api.sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("BIQE_PORTAL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def letter_zip() -> bytes:
    if not LETTER_DIR.is_dir():
        pytest.skip(f"{LETTER_DIR} is not on this machine")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for suffix in (".jpg", ".xml"):
            archive.write(LETTER_DIR / f"{LETTER}{suffix}", f"{LETTER}{suffix}")
    return buf.getvalue()


def sign_in(browser, portal: Portal, email: str, path: str = "/portal/jobs", **context_options):
    """A fresh browser context (its own cookies) signed in as ``email``, on ``path``."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.goto(portal.url(path))
    assert "/portal/login" in page.url
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(portal.url(path))
    return context, page


def csrf_of(page) -> str:
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


def verify_signature(secret: str, headers: dict, body: bytes) -> bool:
    """The README's receiver check (v1 and v2)."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers["X-BIQE-Signature"]):
        return False
    parts = dict(item.split("=", 1) for item in headers["X-BIQE-Signature-V2"].split(","))
    v2 = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(v2, parts["v1"])


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# -- API keys ----------------------------------------------------------------------------------------
def test_sign_in_create_a_key_use_it_and_revoke_it(portal, browser, shots):
    context = browser.new_context()
    page = context.new_page()
    page.goto(portal.url("/portal/settings/api-keys"))
    assert "/portal/login?next=" in page.url  # not signed in: the sign-in page, coming back afterwards
    page.screenshot(path=shots / "01-login.png", full_page=True)
    page.fill("#email", ALICE.upper())  # emails are not case-sensitive
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(portal.url("/portal/settings/api-keys"))
    cookie = next(c for c in context.cookies() if c["name"] == "biqe_portal")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/portal"
    assert not cookie["secure"]  # plain http on loopback; over https it is Secure (test below)

    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal.base)
    page.fill("#label", "archive-ci")
    page.click("button:has-text('New API key')")
    key = page.locator("[data-testid=new-key-value]").inner_text().strip()
    assert re.fullmatch(r"biqe_live_[A-Za-z0-9_-]{40}", key)
    warning = page.locator("#new-key .alert-warn").inner_text()
    assert "shown only once" in warning and "secret manager" in warning
    page.click("#new-key button[data-copy]")
    assert page.evaluate("navigator.clipboard.readText()") == key
    page.screenshot(path=shots / "02-new-key.png", full_page=True)

    assert portal.api("GET", "/v1/usage", key).status_code == 200  # the new key works against the API
    page.goto(portal.url("/portal/settings/api-keys"))
    assert key not in page.content()  # shown once, never again
    row = page.locator("#keys-table tr", has_text="archive-ci")
    assert key[:16] in row.inner_text() and "Active" in row.inner_text()
    assert "never" not in row.locator("td[data-label='Last used']").inner_text()

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_url(re.compile(r".*notice=key-revoked"))
    assert "revoked" in page.locator(".alert-ok").inner_text()
    assert "Revoked" in page.locator("#keys-table tr", has_text="archive-ci").inner_text()
    page.screenshot(path=shots / "03-key-revoked.png", full_page=True)
    refused = portal.api("GET", "/v1/usage", key)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    context.close()


def test_revoke_without_javascript_asks_for_confirmation(portal, browser):
    context, page = sign_in(browser, portal, ALICE, "/portal/settings/api-keys", java_script_enabled=False)
    key = portal.key("acme", "no-js")
    page.reload()
    page.locator("#keys-table tr", has_text="no-js").locator("button:has-text('Revoke')").click()
    assert "Revoke the key “no-js”?" in page.locator("h1").inner_text()  # the server's confirmation page
    assert portal.api("GET", "/v1/usage", key).status_code == 200  # nothing revoked yet
    page.click("button:has-text('Revoke key')")
    assert "revoked" in page.locator(".alert-ok").inner_text()
    assert portal.api("GET", "/v1/usage", key).status_code == 401
    context.close()


# -- webhooks ------------------------------------------------------------------------------------------
def test_reveal_and_rotate_the_webhook_secret(portal, browser, shots):
    context, page = sign_in(browser, portal, ALICE, "/portal/settings/webhooks")
    secret = portal.store.account("acme")["webhook_secret"]
    assert secret not in page.content()  # hidden until asked for
    page.click("#reveal-secret")
    shown = page.locator("[data-testid=webhook-secret]").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", shown) and shown == secret
    page.screenshot(path=shots / "04-webhook-secret.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rotate-secret")
    page.wait_for_selector("text=The secret was rotated")
    rotated = page.locator("[data-testid=webhook-secret]").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", rotated) and rotated != secret
    assert rotated == portal.store.account("acme")["webhook_secret"]
    context.close()


# -- jobs, results, deliveries, usage --------------------------------------------------------------------
def test_upload_a_zip_watch_it_finish_download_it_and_redeliver_its_webhook(portal, browser, shots, letter_zip):
    receiver = WebhookReceiver()
    try:
        context, page = sign_in(browser, portal, ALICE, "/portal/jobs")
        page.set_input_files("#scan_zip", files=[{"name": "letter 248.zip", "mimeType": "application/zip",
                                                  "buffer": letter_zip}])
        page.select_option("#llm_tier", "cheap")
        page.select_option("#preset", "english_19_20c_letters")
        page.select_option("#pdf_format", "pdf")
        page.select_option("#pipeline_steps", STEPS)
        page.fill("#webhook_url", receiver.url)
        page.click("button:has-text('Upload and start')")
        page.wait_for_url(re.compile(r".*notice=job-submitted"))
        job_id = page.url.split("#job-")[1]
        job = portal.store.job(job_id)
        assert (job["llm_tier"], job["preset"], job["pdf_format"], job["pipeline_steps"]) == \
               ("cheap", "english_19_20c_letters", "pdf", STEPS)
        row = page.locator(f"#job-{job_id}")
        assert "letter 248.zip" in row.inner_text() and row.locator("td[data-label=Pages]").inner_text() == "1"
        page.screenshot(path=shots / "05a-job-submitted.png", full_page=True)  # queued or processing

        # no reload: the page's script refreshes the table until the job ends
        page.wait_for_selector(f"#job-{job_id}[data-state=done]", timeout=120_000)
        row = page.locator(f"#job-{job_id}")
        assert row.locator("[data-testid=state]").inner_text() == "done"
        assert row.locator("td[data-label=Finished] time").count() == 1
        page.screenshot(path=shots / "05-job-done.png", full_page=True)

        with page.expect_download() as download_info:
            row.locator("a:has-text('Download')").click()
        path = download_info.value.path()
        with zipfile.ZipFile(path) as result:
            names = set(result.namelist())
        assert {f"page/{LETTER}.xml", f"alto/{LETTER}.xml", "document.json"} <= names
        assert any(name.endswith(".pdf") for name in names)
        with zipfile.ZipFile(path) as result:
            assert result.read("document.json") and result.read(f"alto/{LETTER}.xml").startswith(b"<?xml")

        # the webhook arrived, signed with the account's secret; the portal lists it and redelivers it
        wait_for(lambda: len(receiver.requests) >= 1, what="the webhook")
        _, headers, body = receiver.requests[0]
        secret = portal.store.account("acme")["webhook_secret"]
        assert verify_signature(secret, headers, body) and json.loads(body)["job_id"] == job_id
        page.goto(portal.url("/portal/settings/webhooks"))
        delivery = page.locator("#deliveries-table tbody tr", has_text=job_id[:8]).first
        assert delivery.locator(".cell-status").inner_text().strip() == "200"
        assert delivery.locator(".cell-attempts").inner_text().strip() == "1"
        delivery.locator("button:has-text('Redeliver')").click()
        page.wait_for_url(re.compile(r".*notice=redelivery-queued"))
        wait_for(lambda: len(receiver.requests) >= 2, what="the redelivery")
        _, headers2, body2 = receiver.requests[1]
        assert body2 == body and headers2["X-BIQE-Delivery"] != headers["X-BIQE-Delivery"]
        assert verify_signature(portal.store.account("acme")["webhook_secret"], headers2, body2)
        page.reload()
        assert page.locator("#deliveries-table tbody tr", has_text=job_id[:8]).count() == 2
        page.screenshot(path=shots / "06-deliveries.png", full_page=True)

        # usage: the done job's page is billed this month, as the API says
        page.goto(portal.url("/portal/usage"))
        months = portal.store.usage(portal.store.account("acme")["id"])
        assert months and page.locator("#total-pages").inner_text() == str(sum(m["pages"] for m in months))
        assert page.locator(f"#usage-table tr[data-month='{months[-1]['month']}']").count() == 1
        page.screenshot(path=shots / "07-usage.png", full_page=True)
        context.close()
    finally:
        receiver.close()


def test_an_invalid_upload_gets_the_apis_message_and_stores_nothing(portal, browser, shots):
    context, page = sign_in(browser, portal, ALICE, "/portal/jobs")
    jobs_before = len(portal.store.list_jobs(portal.store.account("acme")["id"]))
    not_a_zip = b"%PDF-1.4 this is not a zip"
    api_answer = portal.api("POST", "/v1/process-scan", portal.key(), files={"scan_zip": ("scan.zip", not_a_zip)})
    assert api_answer.status_code == 400
    page.set_input_files("#scan_zip", files=[{"name": "scan.zip", "mimeType": "application/zip",
                                              "buffer": not_a_zip}])
    with page.expect_response(lambda r: r.url.endswith("/portal/jobs") and r.request.method == "POST") as answer:
        page.click("button:has-text('Upload and start')")
    assert answer.value.status == 400
    error = page.locator("#upload-error").inner_text()
    assert api_answer.json()["message"] in error and api_answer.json()["error"] in error
    assert page.locator("#pipeline_steps").input_value() == "layout,recognition,correction,export"
    page.screenshot(path=shots / "08-upload-refused.png", full_page=True)
    assert len(portal.store.list_jobs(portal.store.account("acme")["id"])) == jobs_before
    context.close()


def test_cancel_a_queued_job(portal, browser, letter_zip):
    portal.gate.clear()  # the worker takes no new job: this one stays queued
    try:
        job_id = portal.api("POST", "/v1/process-scan", portal.key(), data={"pdf_format": "none"},
                            files={"scan_zip": ("queued.zip", letter_zip)}).json()["job_id"]
        context, page = sign_in(browser, portal, ALICE, "/portal/jobs")
        row = page.locator(f"#job-{job_id}")
        assert row.get_attribute("data-state") == "queued"
        assert row.locator("a:has-text('Download')").count() == 0  # nothing to download yet
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("button:has-text('Cancel')").click()
        page.wait_for_url(re.compile(r".*notice=job-cancelled"))
        assert page.locator(f"#job-{job_id}").get_attribute("data-state") == "cancelled"
        assert portal.store.job(job_id)["state"] == "cancelled"
        context.close()
    finally:
        portal.gate.set()


# -- isolation, CSRF, throttling, sessions ------------------------------------------------------------------
def test_another_accounts_user_never_sees_these_keys_or_jobs(portal, browser, letter_zip):
    alice_key_record, alice_key = portal.store.create_key("acme", "alice-private-key")
    job_id = portal.api("POST", "/v1/process-scan", alice_key, data={"pdf_format": "none", "pipeline_steps": STEPS},
                        files={"scan_zip": ("alice-only.zip", letter_zip)}).json()["job_id"]
    wait_for(lambda: portal.store.job(job_id)["state"] == "done", timeout=120, what="alice's job")
    context, page = sign_in(browser, portal, BOB, "/portal/settings/api-keys")
    assert "globex" in page.locator(".who").inner_text()
    assert "alice-private-key" not in page.content() and alice_key_record["prefix"] not in page.content()
    page.goto(portal.url("/portal/jobs"))
    assert job_id not in page.content() and "alice-only.zip" not in page.content()
    page.goto(portal.url("/portal/settings/webhooks"))
    assert job_id[:8] not in page.content()
    # direct URLs to alice's things: not found, as if they did not exist
    answer = page.goto(portal.url(f"/portal/jobs/{job_id}/result"))
    assert answer.status == 404 and "Not found" in page.locator("h1").inner_text()
    page.goto(portal.url("/portal/jobs"))
    token = csrf_of(page)
    for path in (f"/portal/settings/api-keys/{alice_key_record['id']}/revoke", f"/portal/jobs/{job_id}/cancel"):
        answer = page.request.post(portal.url(path), form={"csrf_token": token, "confirmed": "yes"})
        assert answer.status == 404, path
    assert portal.api("GET", "/v1/usage", alice_key).status_code == 200  # alice's key still works
    context.close()


def test_forms_without_a_csrf_token_are_refused(portal, browser):
    store = portal.store
    context, page = sign_in(browser, portal, ALICE, "/portal/settings/api-keys")
    token = csrf_of(page)
    secret = store.account("acme")["webhook_secret"]
    for form in ({"label": "forged"}, {"label": "forged", "csrf_token": "wrong-token"}):
        answer = page.request.post(portal.url("/portal/settings/api-keys"), form=form)
        assert answer.status == 403 and "CSRF" in answer.text()
    answer = page.request.post(portal.url("/portal/settings/webhooks/rotate"), form={"confirmed": "yes"})
    assert answer.status == 403
    answer = page.request.post(portal.url("/portal/settings/webhooks/reveal"), form={})
    assert answer.status == 403 and secret not in answer.text()
    answer = page.request.post(portal.url("/portal/logout"), form={})
    assert answer.status == 403
    # the right token, but sent from another site: refused too
    answer = page.request.post(portal.url("/portal/settings/api-keys"), form={"label": "forged", "csrf_token": token},
                               headers={"Origin": "https://evil.example"})
    assert answer.status == 403
    assert "forged" not in [k["label"] for k in store.list_keys("acme")]
    assert store.account("acme")["webhook_secret"] == secret
    page.goto(portal.url("/portal/settings/api-keys"))  # still signed in: the refused sign-out did nothing
    assert page.url.endswith("/portal/settings/api-keys")
    context.close()

    # the sign-in form too: a token that matches the form's cookie is required
    fresh = browser.new_context()
    answer = fresh.request.post(portal.url("/portal/login"), form={"email": ALICE, "password": PASSWORD})
    assert answer.status == 403 and not any(c["name"] == "biqe_portal" for c in fresh.cookies())
    fresh.close()


def test_wrong_passwords_are_rate_limited(portal, browser, shots):
    context = browser.new_context()
    page = context.new_page()
    page.goto(portal.url("/portal/login"))

    def attempt(password: str) -> int:
        page.fill("#email", CAROL)
        page.fill("#password", password)
        with page.expect_response(lambda r: r.url.endswith("/portal/login") and r.request.method == "POST") as answer:
            page.click("button:has-text('Sign in')")
        return answer.value.status

    for i in range(5):
        assert attempt(f"wrong password {i}") == 401
        assert "Incorrect email or password" in page.locator(".alert-error").inner_text()
    assert attempt("wrong password 6") == 429
    message = page.locator(".alert-error").inner_text()
    assert "Too many failed sign-in attempts" in message and "Try again in 15 minutes" in message
    page.screenshot(path=shots / "09-rate-limited.png", full_page=True)
    assert attempt(PASSWORD) == 429  # locked out even with the right password until the window passes
    assert "/portal/login" in page.url
    context.close()
    # another user from the same address is not locked out
    other, _ = sign_in(browser, portal, ALICE)
    other.close()


def test_many_emails_from_one_address_are_rate_limited_too(portal, monkeypatch):
    """Password spraying: failures for different emails from one address add up to a lock on the address."""
    from biqe_lab.api import users as users_module

    monkeypatch.setattr(users_module, "MAX_ADDRESS_FAILURES", 3)
    users = users_module.Users(portal.store)
    for i in range(3):
        with pytest.raises(users_module.SignInError):
            users.sign_in(f"nobody{i}@spray.example", "wrong password", "192.0.2.7")
    with pytest.raises(users_module.TooManyAttemptsError, match="from your network"):
        users.sign_in(ALICE, PASSWORD, "192.0.2.7")  # the right password, but from the locked address
    session, token = users.sign_in(ALICE, PASSWORD, "192.0.2.8")  # another address is fine
    assert session.email == ALICE and users.session(token) == session


def test_sign_out_ends_the_session(portal, browser):
    context, page = sign_in(browser, portal, ALICE, "/portal/usage")
    token = next(c["value"] for c in context.cookies() if c["name"] == "biqe_portal")
    page.click("button:has-text('Sign out')")
    page.wait_for_url(re.compile(r".*/portal/login\?notice=signed-out"))
    assert "signed out" in page.locator(".alert-ok").inner_text()
    page.goto(portal.url("/portal/usage"))
    assert "/portal/login" in page.url
    replay = httpx.get(portal.url("/portal/usage"), cookies={"biqe_portal": token}, follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/portal/login")
    context.close()


def test_session_cookie_is_secure_over_https(portal):
    from fastapi.testclient import TestClient

    client = TestClient(create_app(portal.settings), base_url="https://portal.example")
    form = client.get("/portal/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    assert "secure" in form.headers["set-cookie"].lower()
    answer = client.post("/portal/login", data={"email": ALICE, "password": PASSWORD, "csrf_token": token},
                         follow_redirects=False)
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("biqe_portal="))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert {"secure", "httponly", "samesite=lax", "path=/portal"} <= set(flags)
    assert answer.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in \
        answer.headers["content-security-policy"]


def test_users_create_reads_the_password_twice(portal):
    env = {"BIQE_DATA_DIR": str(portal.settings.data_dir)}
    differ = CliRunner().invoke(cli, ["users", "create", "--account", "acme", "--email", "dan@acme.example"],
                                input=f"{PASSWORD}\nsomething else\n", env=env)
    assert differ.exit_code == 2 and "differ" in differ.output
    short = CliRunner().invoke(cli, ["users", "create", "--account", "acme", "--email", "dan@acme.example"],
                               input="short\nshort\n", env=env)
    assert short.exit_code == 2 and "at least" in short.output
    again = CliRunner().invoke(cli, ["users", "create", "--account", "acme", "--email", ALICE],
                               input=f"{PASSWORD}\n{PASSWORD}\n", env=env)
    assert again.exit_code == 2 and "exists already" in again.output
    row = portal.store._one("SELECT password_hash FROM users WHERE email = ?", (ALICE,))
    assert row["password_hash"].startswith("scrypt$") and PASSWORD not in row["password_hash"]


# -- looks ---------------------------------------------------------------------------------------------------
def test_pages_are_readable_on_a_phone(portal, browser, shots):
    context, page = sign_in(browser, portal, ALICE, "/portal/jobs", viewport={"width": 390, "height": 844},
                            is_mobile=True, has_touch=True, device_scale_factor=2)
    for name, path in (("jobs", "/portal/jobs"), ("api-keys", "/portal/settings/api-keys"),
                       ("webhooks", "/portal/settings/webhooks"), ("usage", "/portal/usage")):
        page.goto(portal.url(path))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
        page.screenshot(path=shots / f"10-phone-{name}.png", full_page=True)
    context.close()
