"""`biqe-lab serve`: uvicorn for the API plus N `biqe-lab worker` processes beside it, stopped with it."""
from __future__ import annotations

import subprocess
import sys

from .app import create_app
from .settings import Settings


def serve(host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    settings = Settings.from_env()
    app = create_app(settings)  # creates the database before the workers open it
    children = [subprocess.Popen([sys.executable, "-m", "biqe_lab.cli", "worker"]) for _ in range(workers)]
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        for child in children:
            child.terminate()  # SIGTERM: a running job goes back to the queue
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
