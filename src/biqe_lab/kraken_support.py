"""Glue shared by the kraken-backed steps: device selection and kraken's version."""
from __future__ import annotations

from .errors import InputError


def kraken_device(device: str) -> dict:
    """``cpu`` / ``cuda:0`` / ``auto`` as the accelerator and device kraken's configs expect."""
    from kraken.ketos.util import to_ptl_device

    try:
        accelerator, devices = to_ptl_device(device)
    except Exception as exc:  # kraken raises a bare Exception
        raise InputError(f"invalid device {device!r}: {exc}") from exc
    return {"accelerator": accelerator, "device": devices}


def kraken_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kraken")
    except PackageNotFoundError:
        return None
