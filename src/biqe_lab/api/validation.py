"""Checking a submission before anything is stored: options, webhook URL, and the upload staged in a temp folder."""
from __future__ import annotations

import hashlib
import ipaddress
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional
from urllib.parse import urlsplit

from ..correction import TIERS
from ..correction.presets import DEFAULT_PRESET, preset_names
from ..errors import ArchiveTooLargeError, InputError
from ..ingest import ingest
from ..safezip import ZipLimits
from .settings import Settings

LLM_TIERS = TIERS
DEFAULT_LLM_TIER = "balanced"
PRESETS = tuple(preset_names())  # the correction presets shipped in the package (biqe-lab presets list)
DEFAULT_PDF_FORMAT = "pdfa-2b"


class UploadTooLargeError(InputError):
    """The uploaded file is over BIQE_MAX_UPLOAD_MB."""

    code = "upload_too_large"
    http_status = 413


def check_choice(name: str, value: Optional[str], choices: tuple[str, ...], default: str) -> str:
    value = (value or "").strip() or default
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}", field=name)
    return value


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


def check_webhook_url(url: Optional[str], allow_insecure: bool) -> Optional[str]:
    """An HTTPS URL whose host resolves only to public addresses (server-side request forgery guard).

    With ``allow_insecure`` (BIQE_ALLOW_INSECURE_WEBHOOKS=1) http:// and private addresses pass.
    Empty means no callback.
    """
    url = (url or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InputError(f"webhook_url {url!r} is not an absolute HTTPS URL", field="webhook_url")
    if parts.username or parts.password:
        raise InputError("webhook_url must not carry credentials", field="webhook_url")
    if allow_insecure:
        return url
    if parts.scheme != "https":
        raise InputError(f"webhook_url must use HTTPS, got {parts.scheme}://", field="webhook_url")
    check_public_host(parts.hostname, parts.port or 443)
    return url


def check_public_host(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"webhook_url host {host!r} does not resolve: {exc}", field="webhook_url") from exc
    private = sorted({info[4][0] for info in infos if not _is_public(info[4][0])})
    if private or not infos:
        raise InputError(f"webhook_url host {host!r} resolves to a loopback, private or link-local address "
                         f"({', '.join(private)}); refused", field="webhook_url")


@dataclass
class StagedUpload:
    """A validated upload in a temp folder (``folder/input`` holds the page images), ready to move into place."""

    folder: Path
    page_count: int
    sha256: str
    filename: str

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stage_upload(stream: BinaryIO, filename: str, settings: Settings) -> StagedUpload:
    """Copy the upload (size-limited), then extract and decode it as the worker will; nothing stays on error."""
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    folder = settings.tmp_dir / f"upload-{uuid.uuid4()}"
    folder.mkdir()
    try:
        archive = folder / "upload.zip"
        digest = hashlib.sha256()
        size = 0
        with open(archive, "wb") as out:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise UploadTooLargeError(f"the upload is over the limit of {settings.max_upload_mb} MB",
                                              limit_mb=settings.max_upload_mb)
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise InputError("scan_zip is empty", field="scan_zip")
        limits = ZipLimits(max_pages=settings.max_pages)
        document = ingest(archive, workdir=folder / "input", limits=limits, with_ground_truth=True)
        if len(document.pages) > settings.max_pages:  # multi-page TIFFs count every frame
            raise ArchiveTooLargeError(f"the ZIP holds {len(document.pages)} pages; the limit is "
                                       f"{settings.max_pages}", limit=settings.max_pages)
        archive.unlink()
        return StagedUpload(folder=folder, page_count=len(document.pages), sha256=digest.hexdigest(),
                            filename=Path(filename or "scan.zip").name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
