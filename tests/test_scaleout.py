"""Production mode on real servers on loopback: PostgreSQL, Redis, `biqe-lab serve --workers 0` and two
`biqe-lab worker --queue celery` processes (end to end with a signed webhook, a burst of 20 jobs processed
exactly once, cancel, a worker killed mid-job); migrations from an empty database and from the previous
schema version. Tiny synthetic pages with ground-truth layout + tesseract keep the jobs fast."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import hmac
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from biqe_lab.api.localservers import CLI, Postgres, Redis, Stack, missing_programs
from biqe_lab.api.settings import Settings
from biqe_lab.api.store import Store, hash_key

from conftest import WebhookReceiver, claim_concurrently
from test_api import TEST_CONFIG, make_zip, page_files  # noqa: F401 - page_files is a fixture

STEPS = "layout,recognition,export"  # correction (an LLM) is not what these tests are about
TERMINAL = {"done", "failed", "cancelled"}
PREVIOUS_SCHEMA = Path(__file__).with_name("api_schema_0001.sql")


@pytest.fixture(scope="session")
def servers():
    """Debian's postgresql and redis-server, started for this test session in temp dirs."""
    missing = missing_programs()
    if missing:
        pytest.skip("production-mode tests need " + " and ".join(missing) + "; scripts/setup.sh installs them")
    pg, redis = Postgres(), Redis()
    try:
        pg.start()
        redis.start()
        yield pg, redis
    finally:
        redis.stop()
        pg.stop()


class Cluster(Stack):
    """The API alone and Celery workers on one PostgreSQL database and one Redis, with an account and a client."""

    def __init__(self, pg: Postgres, redis: Redis, folder: Path, name: str) -> None:
        super().__init__(folder, pg.create_database(name), redis.url(1), BIQE_ALLOW_INSECURE_WEBHOOKS="1",
                         BIQE_WEBHOOK_BACKOFF="0.5,1,1,1,1", BIQE_MAX_PAGES="60", BIQE_HEARTBEAT_INTERVAL_S="0.5",
                         BIQE_HEARTBEAT_TIMEOUT_S="4",
                         BIQE_PIPELINE_CONFIG=json.dumps({"layout": TEST_CONFIG.layout, "engine": TEST_CONFIG.engine,
                                                          "languages": list(TEST_CONFIG.languages)}))
        self.settings = Settings.from_env(self.env)
        self.store = Store(self.settings.db_url)
        self.account = self.store.create_account("acme")
        _, self.key = self.store.create_key("acme", "tests")
        self.client = httpx.Client(base_url=self.base, headers={"X-API-Key": self.key}, timeout=60)

    def submit(self, data: bytes, **form) -> dict:
        form = {"pipeline_steps": STEPS, "pdf_format": "none", **form}
        r = self.client.post("/v1/process-scan", files={"scan_zip": ("scan.zip", data, "application/zip")}, data=form)
        assert r.status_code == 202, r.text
        return r.json()

    def status(self, job_id: str) -> dict:
        return self.client.get(f"/v1/process-scan/{job_id}").json()

    def wait(self, job_ids, until=TERMINAL, timeout: float = 90) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        states: dict[str, dict] = {}
        while time.monotonic() < deadline:
            states = {job_id: self.status(job_id) for job_id in job_ids}
            if all(s["state"] in until for s in states.values()):
                return states
            time.sleep(0.3)
        pytest.fail(f"jobs did not reach {until} in {timeout} s: "
                    f"{ {k: (v['state'], v['current_step']) for k, v in states.items()} }\n{self.logs()}")

    def done_lines(self) -> list[str]:
        """Job ids in the workers' "job <id> done" log lines (one per run that ended done)."""
        return [m for _, log in self.workers
                for m in re.findall(r"job ([0-9a-f-]{36}) done", log.read_text(errors="replace"))]

    def close(self) -> None:
        self.client.close()
        super().close()
        self.store.dispose()


@pytest.fixture(scope="module")
def cluster(servers, tmp_path_factory):
    pg, redis = servers
    cluster = Cluster(pg, redis, tmp_path_factory.mktemp("cluster"), "e2e")
    try:
        cluster.add_worker()
        cluster.add_worker()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


def _pages(page_files, n: int) -> bytes:
    return make_zip({f"p{i}{Path(name).suffix}": data for i in range(1, n + 1) for name, data in page_files.items()})


# -- the API end to end in production mode ----------------------------------------------------------------
def test_end_to_end_with_two_celery_workers(cluster, page_files):
    receiver = WebhookReceiver(failures=1, fail_status=503)  # the first delivery fails: a retry task on the back-off
    try:
        job = cluster.submit(_pages(page_files, 2), webhook_url=receiver.url)
        assert job["state"] == "queued" and job["page_count"] == 2
        status = cluster.wait([job["job_id"]], until={"done", "failed"})[job["job_id"]]
        assert status["state"] == "done", status
        assert status["result_url"] == job["result_url"] and status["started_at"] and status["finished_at"]
        result = cluster.client.get(f"/v1/process-scan/{job['job_id']}/result")
        assert result.status_code == 200 and result.headers["content-type"] == "application/zip"
        names = set(zipfile.ZipFile(io.BytesIO(result.content)).namelist())
        assert {"page/p1.xml", "page/p2.xml", "alto/p1.xml", "alto/p2.xml", "document.json"} <= names
        deadline = time.monotonic() + 30
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        receiver.close()
    assert len(receiver.requests) == 2, cluster.logs()
    (t1, h1, b1), (t2, h2, body) = receiver.requests
    assert t2 - t1 >= 0.5 and h1["X-BIQE-Delivery"] == h2["X-BIQE-Delivery"] and b1 == body
    secret = cluster.account["webhook_secret"]
    assert hmac.compare_digest(hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), h2["X-BIQE-Signature"])
    assert json.loads(body) == {"job_id": job["job_id"], "state": "done", "page_count": 2,
                                "result_url": job["result_url"]}
    assert h2["X-BIQE-Event"] == "job.completed"
    assert cluster.status(job["job_id"])["webhook"] == {"attempts": 2, "last_status": 200, "delivered": True}
    usage = cluster.client.get("/v1/usage").json()
    assert usage["total_pages"] >= 2


def test_twenty_jobs_at_once_are_each_processed_exactly_once(cluster, page_files):
    data = _pages(page_files, 1)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        jobs = list(pool.map(lambda _: cluster.submit(data), range(20)))
    job_ids = [job["job_id"] for job in jobs]
    assert len(set(job_ids)) == 20
    states = cluster.wait(job_ids, timeout=120)
    assert all(s["state"] == "done" for s in states.values()), states
    rows = {job_id: cluster.store.job(job_id) for job_id in job_ids}
    assert all(row["attempts"] == 1 for row in rows.values())
    done = [job_id for job_id in cluster.done_lines() if job_id in rows]
    assert sorted(done) == sorted(job_ids)  # each ran to the end once, in one worker
    assert len({row["worker_id"] for row in rows.values()}) == 2  # both workers took jobs


def test_cancel_in_production_mode(cluster, page_files):
    job = cluster.submit(_pages(page_files, 40))
    cluster.wait([job["job_id"]], until={"processing"}, timeout=60)
    r = cluster.client.delete(f"/v1/process-scan/{job['job_id']}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    queued = cluster.submit(_pages(page_files, 1))  # a queued job cancelled: its task is revoked (or a no-op)
    assert cluster.client.delete(f"/v1/process-scan/{queued['job_id']}").json()["state"] == "cancelled"
    after = cluster.submit(_pages(page_files, 1))
    assert cluster.wait([after["job_id"]])[after["job_id"]]["state"] == "done"  # the workers moved on
    deadline = time.monotonic() + 10  # a task that was running stops at its next page or step
    for job_id in (job["job_id"], queued["job_id"]):
        assert cluster.status(job_id)["state"] == "cancelled"
        while (cluster.settings.jobs_dir / job_id / "result.zip").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (cluster.settings.jobs_dir / job_id / "result.zip").exists()


def test_a_worker_killed_mid_job_leaves_no_job_stuck(cluster, page_files):
    big = cluster.submit(_pages(page_files, 40))
    small = [cluster.submit(_pages(page_files, 1)) for _ in range(3)]
    status = cluster.wait([big["job_id"]], until={"processing", *TERMINAL}, timeout=60)[big["job_id"]]
    deadline = time.monotonic() + 30
    while "page" not in (status["current_step"] or "") and time.monotonic() < deadline:
        time.sleep(0.1)
        status = cluster.status(big["job_id"])
    assert status["state"] == "processing" and "page" in status["current_step"], status
    pid = int(cluster.store.job(big["job_id"])["worker_id"].split(":")[1])
    victim = next(proc for proc, _ in cluster.workers if proc.pid == pid)
    os.killpg(victim.pid, signal.SIGKILL)  # mid-job: no hand-back, no ack
    victim.wait()
    states = cluster.wait([big["job_id"], *(job["job_id"] for job in small)], timeout=150)
    assert all(s["state"] == "done" for s in states.values()), states
    row = cluster.store.job(big["job_id"])
    assert row["attempts"] == 2 and str(pid) not in row["worker_id"]  # re-queued by heartbeat, redone elsewhere
    result = cluster.client.get(f"/v1/process-scan/{big['job_id']}/result")
    assert len([n for n in zipfile.ZipFile(io.BytesIO(result.content)).namelist() if n.startswith("page/")]) == 40


# -- migrations ---------------------------------------------------------------------------------------------
def _schema_differences(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from biqe_lab.api.db import make_engine
    from biqe_lab.api.schema import metadata

    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    engine.dispose()
    return differences


def _cli(env: dict, *args: str) -> str:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_from_an_empty_database(servers, tmp_path, backend):
    pg, _ = servers
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}" if backend == "sqlite" else pg.create_database("empty")
    env = {**os.environ, "BIQE_DATA_DIR": str(tmp_path), "BIQE_DATABASE_URL": url}
    assert "database: empty" in _cli(env, "db", "current")
    assert "database at revision 0003 (was empty)" in _cli(env, "db", "upgrade")  # every revision, in turn
    assert _schema_differences(url) == []  # the revisions build exactly the tables the code uses
    assert "database at revision 0003" in _cli(env, "db", "upgrade")  # again: nothing to do


def test_migration_from_the_previous_schema_version_keeps_the_data(tmp_path, page_files):
    """A database made by the release before migrations (store.py's CREATE TABLE script), with data in it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = sqlite3.connect(data_dir / "biqe.sqlite3")
    db.executescript(PREVIOUS_SCHEMA.read_text())
    key = "biqe_live_" + "k" * 40
    db.execute("INSERT INTO accounts VALUES ('a1', 'acme', ?, '2026-11-01T00:00:00.000Z')", ("s" * 64,))
    db.execute("INSERT INTO api_keys (id, account_id, label, prefix, key_hash, created_at) "
               "VALUES ('k1', 'a1', 'ci', 'biqe_live_kkkkkk', ?, '2026-11-01T00:00:00.000Z')", (hash_key(key),))
    common = ("'cheap', 'generic_historical', 'none', 'layout,recognition,export', 'https://example.org/hook', "
              "'https://biqe.example.org', '{\"filename\": \"scan.zip\"}'")
    db.execute("INSERT INTO jobs (id, account_id, state, page_count, created_at, finished_at, expires_at, llm_tier, "
               "preset, pdf_format, pipeline_steps, webhook_url, base_url, options, attempts) VALUES "
               f"('done1', 'a1', 'done', 2, '2026-11-02T00:00:00.000Z', '2026-11-02T00:01:00.000Z', "
               f"'2099-01-01T00:00:00.000Z', {common}, 1)")
    db.execute("INSERT INTO jobs (id, account_id, state, page_count, created_at, expires_at, llm_tier, preset, "
               "pdf_format, pipeline_steps, webhook_url, base_url, options) VALUES "
               f"('queued1', 'a1', 'queued', 1, '2026-11-03T00:00:00.000Z', '2099-01-01T00:00:00.000Z', {common})")
    db.execute("INSERT INTO webhook_deliveries (job_id, event, url, payload, delivery_id, attempt, last_status, "
               "delivered, created_at) VALUES ('done1', 'job.completed', 'https://example.org/hook', '{}', 'd1', 1, "
               "200, 1, '2026-11-02T00:01:00.000Z')")
    db.execute("INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, duration_ms) "
               "VALUES ('d1', 1, '2026-11-02T00:01:01.000Z', 200, 12.5)")
    db.execute("INSERT INTO usage VALUES ('a1', '2026-11', 2, 1)")
    db.commit()
    before = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
              for table in ("accounts", "api_keys", "jobs", "webhook_deliveries", "delivery_attempts", "usage")}
    db.close()

    env = {**os.environ, "BIQE_DATA_DIR": str(data_dir)}
    env.pop("BIQE_DATABASE_URL", None)
    assert "database: 0001" in _cli(env, "db", "current")  # recognized as the baseline
    assert "database at revision 0003 (was 0001)" in _cli(env, "db", "upgrade")
    db = sqlite3.connect(data_dir / "biqe.sqlite3")
    for table, rows in before.items():
        after = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        if table == "jobs":  # one new column at the end (0003), empty
            assert [row[:-1] for row in after] == rows and all(row[-1] is None for row in after)
        else:
            assert after == rows, table
    db.close()
    # the same tables, columns and indexes as a new database; only the old primary keys lack an explicit
    # NOT NULL (SQLite reflects them as nullable; the store never writes NULL there)
    from biqe_lab.api.schema import metadata

    differences = _schema_differences(f"sqlite:///{data_dir / 'biqe.sqlite3'}")
    assert all(d[0][0] == "modify_nullable" and metadata.tables[d[0][2]].c[d[0][3]].primary_key
               for d in differences), differences

    # the upgraded store serves the old data and runs the old queued job
    from biqe_lab.api.users import Users
    from biqe_lab.api.worker import Worker

    settings = Settings(data_dir=data_dir, heartbeat_interval_s=0.2)
    store = Store(settings.db_url)
    assert store.authenticate(key)["name"] == "acme"
    assert store.usage("a1") == [{"month": "2026-11", "pages": 2, "jobs": 1}]
    assert store.webhook_summary("done1") == {"attempts": 1, "last_status": 200, "delivered": True}
    Users(store).create("acme", "ops@example.org", "a long enough password")  # the portal's tables exist
    folder = settings.jobs_dir / "queued1" / "input"
    folder.mkdir(parents=True)
    for name, content in page_files.items():
        (folder / name).write_bytes(content)
    assert Worker(settings, TEST_CONFIG, store=store).run_once() is True
    assert store.job("queued1")["state"] == "done"
    assert sum(m["pages"] for m in store.usage("a1")) == 3 and sum(m["jobs"] for m in store.usage("a1")) == 2
    store.dispose()


def test_settings_of_production_mode():
    from biqe_lab.errors import InputError

    s = Settings.from_env({"BIQE_QUEUE": "celery", "BIQE_BROKER_URL": "redis://127.0.0.1:6379/0",
                           "BIQE_DATABASE_URL": "postgresql+psycopg://u@db/biqe",
                           "BIQE_PIPELINE_CONFIG": '{"engine": "tesseract", "languages": ["fra", "lat"]}'})
    assert (s.queue, s.db_url, s.pipeline_overrides) == (
        "celery", "postgresql+psycopg://u@db/biqe", {"engine": "tesseract", "languages": ("fra", "lat")})
    assert Settings.from_env({}).db_url.startswith("sqlite:///") and Settings.from_env({}).queue == "local"
    for env, words in (({"BIQE_QUEUE": "celery"}, "BIQE_BROKER_URL"), ({"BIQE_QUEUE": "kafka"}, "BIQE_QUEUE"),
                       ({"BIQE_DATABASE_URL": "mysql://x"}, "BIQE_DATABASE_URL"),
                       ({"BIQE_PIPELINE_CONFIG": "[1]"}, "JSON object"),
                       ({"BIQE_HEARTBEAT_TIMEOUT_S": "4"}, "BIQE_HEARTBEAT_INTERVAL_S")):
        with pytest.raises(InputError, match=words):
            Settings.from_env(env)
    from biqe_lab.api.worker import worker_config

    assert worker_config(dataclasses.replace(s)).languages == ("fra", "lat")


def test_concurrent_claims_on_postgresql_take_each_job_once(servers):
    """Local workers on PostgreSQL: FOR UPDATE SKIP LOCKED, so racing claimers each get a different job."""
    pg, _ = servers
    store = Store(pg.create_database("claims"))
    account = store.create_account("acme")
    job_ids = set()
    for i in range(12):
        job = {"id": f"job-{i:02d}", "account_id": account["id"], "state": "queued", "page_count": 1,
               "created_at": f"2026-11-30T00:00:{i:02d}.000Z", "expires_at": "2099-01-01T00:00:00.000Z",
               "llm_tier": "cheap", "preset": "generic_historical", "pdf_format": "none", "pipeline_steps": STEPS,
               "base_url": "https://biqe.example.org"}
        job_ids.add(store.insert_job(job)[0]["id"])
    claimed = claim_concurrently(store)
    assert sorted(claimed) == sorted(job_ids)
    store.dispose()
