"""Glue shared by the kraken-backed steps: device selection and kraken's version."""
from __future__ import annotations

import warnings

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


def untrained_recognition_model(path, charset: str,
                                spec: str = "[1,48,0,1 Cr3,3,16 Mp2,2 Cr3,3,32 Mp2,2 S1(1x0)1,3 Lbx32 O1c{n}]",
                                seed: int = 0):
    """Write a randomly initialised kraken recognition model (VGSL ``spec``) to ``path``.

    It reads nothing meaningful: it exercises the kraken engine's plumbing in tests and gives
    benchmarks the cost of a small network; training starts from such a network.
    """
    import torch
    from kraken.lib.codec import PytorchCodec
    from kraken.lib.vgsl import TorchVGSLModel

    torch.manual_seed(seed)
    net = TorchVGSLModel(vgsl=spec.format(n=len(charset) + 1))
    net.add_codec(PytorchCodec(charset))
    net.init_weights()
    net.model_type = ["recognition"]
    net.seg_type = "baselines"
    net.use_legacy_polygons = False  # the current (fast) line extractor, as for newly trained models
    with warnings.catch_warnings():  # kraken 7 deprecates save_model, but its safetensors writer
        warnings.simplefilter("ignore", DeprecationWarning)  # cannot store a codec built this way
        net.save_model(str(path))
    return path
