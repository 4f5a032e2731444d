"""Checking a submission before anything is stored: options, webhook URL, and the upload staged in a temp folder."""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

import httpx
from PIL import Image, UnidentifiedImageError

from ..defaults import (CORRECTION_TIERS, DEFAULT_CORRECTION, DEFAULT_PDF_FORMAT, DEFAULT_PRESET,  # noqa: F401
                        PDF_FORMATS, preset_choices)
from ..errors import (ArchiveTooLargeError, BiqeError, GroundTruthError, ImageDecodeError, ImageTooLargeError,
                      InputError, NoImagesError)
from ..errors import UploadTooLargeError  # noqa: F401 - where callers of this module found it before
from ..ingest import find_images, ingest
from ..safezip import ZipLimits, extract_zip
from .settings import Settings
from .uploads import ReceivedUpload, SpoolFile, new_upload_folder

# The API's names for the choices of biqe_lab.defaults (the published field names: llm_tier, preset, pdf_format).
LLM_TIERS = CORRECTION_TIERS
DEFAULT_LLM_TIER = DEFAULT_CORRECTION
PRESETS = preset_choices()  # "auto" and the correction presets shipped in the package (biqe-lab presets list)


def check_choice(name: str, value: Optional[str], choices: tuple[str, ...], default: str) -> str:
    value = (value or "").strip() or default
    if value not in choices:
        raise InputError(f"unknown {name} {value[:100]!r}; choose one of {', '.join(choices)}", field=name)
    return value


# -- webhook URLs and the server-side request forgery guard ----------------------------------------------------
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix: the last 32 bits are an IPv4 address
_TEREDO = ipaddress.ip_network("2001::/32")


def _public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


def is_public_address(address: str) -> bool:
    """A globally routable address that reaches no private network, also through an IPv6 form that embeds an
    IPv4 address: IPv4-mapped and NAT64 are judged as the IPv4 address they carry, 6to4 must be public and carry
    a public one; Teredo tunnels and IPv4-compatible addresses (deprecated) are refused."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_ip(ip)
    if ip.ipv4_mapped is not None:
        return _public_ip(ip.ipv4_mapped)
    if ip in _NAT64:
        return _public_ip(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _TEREDO or int(ip) >> 32 == 0:
        return False
    if ip.sixtofour is not None and not _public_ip(ip.sixtofour):
        return False
    return _public_ip(ip)


def _shown(url: str) -> str:
    return repr(url if len(url) <= 200 else url[:200] + "...")


def parse_webhook_url(url: str) -> httpx.URL:
    """``url`` as httpx, which sends the webhooks, parses it; InputError (400) for anything it refuses or a port
    outside 1-65535 (httpx itself lets ``:99999`` through to the socket)."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError) as exc:
        raise InputError(f"webhook_url {_shown(url)} is not a valid URL: {exc}", field="webhook_url") from exc
    if port is not None and not 1 <= port <= 65535:
        raise InputError(f"webhook_url {_shown(url)} has port {port}; a port is 1 to 65535", field="webhook_url")
    return parsed


def webhook_host(url: httpx.URL) -> str:
    """The host to resolve: IDNA-encoded, an IPv6 literal without its brackets."""
    return url.raw_host.decode("ascii")


def webhook_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def check_webhook_url(url: Optional[str], allow_insecure: bool) -> Optional[str]:
    """The URL normalized by httpx (what is stored and sent): HTTPS, no credentials, a host that resolves only
    to public addresses (the server-side request forgery guard).

    With ``allow_insecure`` (BIQE_ALLOW_INSECURE_WEBHOOKS=1) http:// and private addresses pass.
    Empty means no callback.
    """
    url = (url or "").strip()
    if not url:
        return None
    parsed = parse_webhook_url(url)
    if parsed.scheme not in ("https", "http") or not parsed.raw_host:
        raise InputError(f"webhook_url {_shown(url)} is not an absolute HTTPS URL", field="webhook_url")
    if parsed.userinfo:
        raise InputError("webhook_url must not carry credentials", field="webhook_url")
    if not allow_insecure:
        if parsed.scheme != "https":
            raise InputError(f"webhook_url must use HTTPS, got {parsed.scheme}://", field="webhook_url")
        public_addresses(webhook_host(parsed), webhook_port(parsed))
    return str(parsed)


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, once, all checked public (InputError otherwise); connect to these."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise InputError(f"webhook_url host {host!r} does not resolve: {exc}", field="webhook_url") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    private = sorted(a for a in addresses if not is_public_address(a))
    if private or not addresses:
        raise InputError(f"webhook_url host {host!r} resolves to a loopback, private or link-local address "
                         f"(or an IPv6 form of one) ({', '.join(private)}); refused", field="webhook_url")
    return addresses


# -- the upload ------------------------------------------------------------------------------------------------
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
    """Copy a file-like upload (size-limited) under the data directory, then check it as stage_received does."""
    upload = ReceivedUpload(folder=new_upload_folder(settings), filename=filename)
    try:
        upload.spool = SpoolFile(upload.folder / "upload.zip", settings)
        while chunk := stream.read(1 << 20):
            upload.spool.write(chunk)
        upload.spool.close()
        return stage_received(upload, settings)
    except BaseException:
        upload.discard()
        raise


def stage_received(upload: ReceivedUpload, settings: Settings) -> StagedUpload:
    """Extract the spooled ZIP and check it as the worker will read it: pixels from the image headers first
    (nothing decoded yet), then every page decoded once. Errors name files as they are inside the archive;
    nothing stays on error."""
    folder, spool = upload.folder, upload.spool
    assert spool is not None
    input_dir = folder / "input"
    try:
        spool.close()
        try:
            if spool.size == 0:
                raise InputError("scan_zip is empty", field="scan_zip")
            extract_zip(spool.path, input_dir, ZipLimits(max_pages=settings.max_pages))
            spool.path.unlink()
            images = find_images(input_dir)  # what the worker's ingest will read, in its order
            if not images:
                raise NoImagesError("the ZIP holds no page image (JPEG, PNG or TIFF)")
            check_pixels(images, input_dir, settings)
            document = ingest(input_dir, with_ground_truth=True)
        except ImageDecodeError as exc:
            name = _inside(exc.details.get("file"), input_dir)
            cause = _scrub(str(exc.__cause__ or exc.message), folder)
            raise ImageDecodeError(f"cannot decode image {name}: {cause}", file=name) from None
        except GroundTruthError as exc:
            raise GroundTruthError(_scrub(exc.message, folder), file=_inside(exc.details.get("file"), input_dir)) \
                from None
        except BiqeError as exc:  # any other message that might name a path of this server
            exc.message = _scrub(exc.message, folder)
            exc.args = (exc.message,)
            exc.details = {k: _scrub(str(v), folder) for k, v in exc.details.items()}
            raise
        if len(document.pages) > settings.max_pages:  # multi-page TIFFs count every frame
            raise ArchiveTooLargeError(f"the ZIP holds {len(document.pages)} pages; the limit is "
                                       f"{settings.max_pages}", limit=settings.max_pages)
        return StagedUpload(folder=folder, page_count=len(document.pages), sha256=spool.sha256,
                            filename=Path(upload.filename or "scan.zip").name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _inside(path: object, root: Path) -> str:
    """A file's name inside the archive (``scans/p1.png``), never the server's path."""
    if path is None:
        return "?"
    try:
        return Path(str(path)).relative_to(root).as_posix()
    except ValueError:
        return Path(str(path)).name


def _scrub(text: str, folder: Path) -> str:
    """``text`` without the server's paths of this upload (``folder`` and the folders above it)."""
    for form in sorted({str(folder / "input"), str((folder / "input").resolve()), str(folder),
                        str(folder.resolve())}, key=len, reverse=True):
        text = text.replace(form + os.sep, "").replace(form, "the upload")
    return text


def frame_sizes(path: Path, name: str, max_frames: int) -> list[tuple[int, int]]:
    """(width, height) of every frame of an image, read from its headers without decoding any pixel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format == "TIFF":  # each frame has its own header; n_frames would walk them all, however many
                    sizes = []
                    for frame in range(max_frames + 1):
                        try:
                            im.seek(frame)
                        except EOFError:
                            break
                        sizes.append(im.size)
                    frames = len(sizes)
                else:
                    frames = getattr(im, "n_frames", 1)  # PNG (APNG), MPO: counted in a header
                    sizes = []
                if frames > max_frames:
                    raise ArchiveTooLargeError(f"{name} holds more than {max_frames} pages (frames), the limit",
                                               file=name, limit=max_frames)
                if sizes:
                    return sizes
                if im.format == "PNG" or frames == 1:  # APNG frames lie inside the canvas (seeking would decode)
                    return [im.size] * frames
                for frame in range(frames):  # MPO: each frame has its own header
                    im.seek(frame)
                    sizes.append(im.size)
                return sizes
    except Image.DecompressionBombError as exc:  # Pillow's own bound (twice Image.MAX_IMAGE_PIXELS)
        raise ImageTooLargeError(f"{name} is over the pixel limit: {exc}", file=name) from None
    except (OSError, UnidentifiedImageError, EOFError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"cannot decode image {name}: {exc}", file=path) from exc


def check_pixels(images: list[Path], root: Path, settings: Settings) -> None:
    """ImageTooLargeError (413) when a page, or all pages together, has more pixels than the settings allow."""
    per_page, per_job = settings.max_page_pixels, settings.max_job_pixels
    total = frames = 0
    for path in images:
        name = path.relative_to(root).as_posix()
        sizes = frame_sizes(path, name, settings.max_pages)
        for index, (width, height) in enumerate(sizes):
            page = f"{name} (page {index + 1})" if len(sizes) > 1 else name
            pixels = width * height
            if pixels > per_page:
                raise ImageTooLargeError(
                    f"{page} is {width} x {height} pixels ({pixels / 1e6:.1f} megapixels); the limit is "
                    f"{per_page / 1e6:g} megapixels per page", file=name, limit_megapixels=f"{per_page / 1e6:g}")
            total += pixels
            if total > per_job:
                raise ImageTooLargeError(
                    f"the pages of this job have more than {per_job / 1e6:g} megapixels together (the limit per "
                    f"job), passed at {page}", file=name, limit_megapixels=f"{per_job / 1e6:g}")
        frames += len(sizes)
        if frames > settings.max_pages:
            raise ArchiveTooLargeError(f"the ZIP holds more than {settings.max_pages} pages (the configured limit)",
                                       limit=settings.max_pages)
