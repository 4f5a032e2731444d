"""The one atomic-write helper: write beside the target, then rename, so a reader never sees half a file."""
from __future__ import annotations

from pathlib import Path
from typing import Union


def write_atomically(path: Union[str, Path], data: Union[bytes, str]) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    tmp.replace(path)
    return path
