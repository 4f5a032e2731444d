"""`biqe-lab serve`: uvicorn for the API plus N `biqe-lab worker` processes beside it, kept running and stopped with it."""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

from .app import create_app
from .settings import Settings

log = logging.getLogger("biqe_lab.serve")

WORKER_COMMAND = (sys.executable, "-m", "biqe_lab.cli", "worker")
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds before restarting a child that died, then again...


class WorkerSupervisor:
    """Keeps ``count`` worker processes running beside the server: a child that exits is reaped, logged and
    started again after a back-off that grows while it keeps dying (reset once it ran ``stable_s`` seconds)."""

    def __init__(self, count: int, command: Optional[Sequence[str]] = None,
                 backoff: Sequence[float] = RESTART_BACKOFF, stable_s: float = 60.0, poll_s: float = 1.0) -> None:
        self.command = list(command or WORKER_COMMAND)
        self.backoff, self.stable_s, self.poll_s = tuple(backoff), stable_s, poll_s
        self.children: list[subprocess.Popen] = []
        self.started_at: list[float] = []  # monotonic start time of every child, restarts included
        self.restarts = 0
        self._slots: list[dict] = [{"proc": None, "failures": 0, "since": 0.0, "due": 0.0} for _ in range(count)]
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _spawn(self, slot: dict) -> None:
        slot["proc"] = proc = subprocess.Popen(self.command)
        slot["since"] = time.monotonic()
        self.children.append(proc)
        self.started_at.append(slot["since"])

    def start(self) -> None:
        for slot in self._slots:
            self._spawn(slot)
        if self._slots:
            self._thread = threading.Thread(target=self._watch, daemon=True, name="worker-supervisor")
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

    def check(self) -> None:
        """Reap children that exited, and restart those whose back-off has passed."""
        now = time.monotonic()
        for index, slot in enumerate(self._slots):
            proc = slot["proc"]
            if proc is not None:
                code = proc.poll()  # reaps it
                if code is None:
                    continue
                slot["failures"] = 1 if now - slot["since"] >= self.stable_s else slot["failures"] + 1
                delay = self.backoff[min(slot["failures"], len(self.backoff)) - 1] if self.backoff else 0.0
                slot["proc"], slot["due"] = None, now + delay
                log.warning("worker process %d (pid %d) exited with code %s after %.0f s; restarting it in %g s",
                            index + 1, proc.pid, code, now - slot["since"], delay)
            elif now >= slot["due"] and not self._stop.is_set():
                self._spawn(slot)
                self.restarts += 1
                log.info("worker process %d restarted (pid %d)", index + 1, slot["proc"].pid)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching; SIGTERM every running child (a running job goes back to the queue), SIGKILL the slow."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        running = [slot["proc"] for slot in self._slots if slot["proc"] is not None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serve(host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    app = create_app(settings)  # creates the database before the workers open it
    supervisor = WorkerSupervisor(workers)
    supervisor.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        supervisor.stop()
