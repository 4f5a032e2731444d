"""Progress reporting and cancellation handed to the runner (only the runner reports progress)."""
from __future__ import annotations

import sys
import threading
from typing import Optional, Protocol

from .errors import CancelledError


class Progress(Protocol):
    def start(self, total_pages: int) -> None: ...

    def step(self, page_index: int, page_name: str, step: str) -> None: ...

    def page_done(self, page_index: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing (library use, tests)."""

    def start(self, total_pages: int) -> None:
        pass

    def step(self, page_index: int, page_name: str, step: str) -> None:
        pass

    def page_done(self, page_index: int) -> None:
        pass

    def finish(self) -> None:
        pass


class ConsoleProgress:
    """A progress bar on stderr (rich), with the current page and step."""

    def __init__(self, description: str = "pages") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as _Bar, TextColumn, TimeElapsedColumn

        self._bar = _Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("{task.fields[detail]}"),
                         console=Console(file=sys.stderr), transient=False)
        self._description = description
        self._task: Optional[int] = None

    def start(self, total_pages: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(self._description, total=total_pages, detail="")

    def step(self, page_index: int, page_name: str, step: str) -> None:
        self._bar.update(self._task, detail=f"{page_name}: {step}")

    def page_done(self, page_index: int) -> None:
        self._bar.update(self._task, completed=page_index + 1)

    def finish(self) -> None:
        self._bar.update(self._task, detail="done")
        self._bar.stop()


class CancelToken:
    """Set from any thread (an API cancel, a notebook button); the runner checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, where: str = "") -> None:
        if self._event.is_set():
            raise CancelledError(f"cancelled{(' ' + where) if where else ''}")
