-- The job store's schema as released before migrations (commit 14b9e3f, store.py SCHEMA): revision 0001.

CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    webhook_secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    label TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    state TEXT NOT NULL CHECK (state IN ('queued','processing','done','failed','cancelled')),
    page_count INTEGER NOT NULL,
    current_step TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    expires_at TEXT NOT NULL,
    error_message TEXT,
    warning_message TEXT,
    llm_tier TEXT NOT NULL,
    preset TEXT NOT NULL,
    pdf_format TEXT NOT NULL,
    pipeline_steps TEXT NOT NULL,
    webhook_url TEXT,
    base_url TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    heartbeat_at REAL,
    worker_id TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    result_expired_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, created_at);
CREATE INDEX IF NOT EXISTS jobs_account ON jobs(account_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivery_id TEXT NOT NULL UNIQUE,
    attempt INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_status INTEGER,
    last_error TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON webhook_deliveries(delivered, next_attempt_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms REAL
);
CREATE TABLE IF NOT EXISTS usage (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    month TEXT NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    jobs INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, month)
);
