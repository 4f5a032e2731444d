"""Safe extraction of uploaded ZIP archives: refuses encryption, path escapes, symlinks and zip bombs."""
from __future__ import annotations

import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ArchiveTooLargeError, InputError, NoImagesError, UnsafeArchiveError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
XML_SUFFIXES = frozenset({".xml"})
_SKIPPED_PARTS = {"__MACOSX"}
_SKIPPED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class ZipLimits:
    """Limits against zip bombs; every one is configurable (CLI options, API settings)."""

    max_total_bytes: int = 2 * 1024**3  # uncompressed size of all kept entries
    max_entry_ratio: float = 200.0  # uncompressed / compressed, per entry
    max_pages: int = 500  # image entries
    max_entries: int = 10_000  # entries of any kind, skipped ones included


def _is_skipped(name: PurePosixPath) -> bool:
    return (
        any(part in _SKIPPED_PARTS for part in name.parts)
        or name.name in _SKIPPED_NAMES
        or name.name.startswith("._")
    )


def _check_path(raw: str) -> PurePosixPath:
    name = raw.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"ZIP entry {raw!r} has an absolute path", entry=raw)
    if ".." in path.parts:
        raise UnsafeArchiveError(f"ZIP entry {raw!r} points outside the archive ('..')", entry=raw)
    return path


def plan_extraction(archive: zipfile.ZipFile, limits: ZipLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every entry against the rules and limits; return the entries to extract.

    Raises before anything is written, so a refused archive leaves nothing behind.
    """
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveTooLargeError(
            f"ZIP has {len(infos)} entries; the limit is {limits.max_entries}", entries=len(infos)
        )
    keep: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    total = pages = 0
    for info in infos:
        path = _check_path(info.filename)
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(
                f"ZIP entry {info.filename!r} is password-protected; upload an unencrypted ZIP",
                entry=info.filename,
            )
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"ZIP entry {info.filename!r} is a symbolic link", entry=info.filename)
        if info.is_dir() or _is_skipped(path):
            continue
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES | XML_SUFFIXES:
            continue
        if info.compress_size and info.file_size / info.compress_size > limits.max_entry_ratio:
            raise ArchiveTooLargeError(
                f"ZIP entry {info.filename!r} expands {info.file_size / info.compress_size:.0f}x; "
                f"the limit is {limits.max_entry_ratio:.0f}x (zip bomb?)",
                entry=info.filename,
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveTooLargeError(
                f"ZIP expands to more than {limits.max_total_bytes} bytes (the configured limit)",
                limit=limits.max_total_bytes,
            )
        if suffix in IMAGE_SUFFIXES:
            pages += 1
            if pages > limits.max_pages:
                raise ArchiveTooLargeError(
                    f"ZIP holds more than {limits.max_pages} page images (the configured limit)",
                    limit=limits.max_pages,
                )
        keep.append((info, path))
    if pages == 0:
        raise NoImagesError("the ZIP holds no page image (JPEG, PNG or TIFF)")
    return keep


def extract_zip(source: str | Path, dest: str | Path, limits: ZipLimits | None = None) -> list[Path]:
    """Extract the images and XML files of ``source`` into ``dest``; return the written paths.

    Sizes are checked against the headers first and again while streaming, since a crafted
    header can lie about the uncompressed size.
    """
    limits = limits or ZipLimits()
    dest = Path(dest)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{Path(source).name} is not a readable ZIP archive: {exc}") from exc
    written: list[Path] = []
    with archive:
        plan = plan_extraction(archive, limits)
        budget = limits.max_total_bytes
        try:
            for info, path in plan:
                target = dest.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                written.append(target)
                with archive.open(info) as src, open(target, "wb") as out:
                    copied = 0
                    while chunk := src.read(1 << 20):
                        copied += len(chunk)
                        budget -= len(chunk)
                        if copied > info.file_size or budget < 0:
                            raise ArchiveTooLargeError(
                                f"ZIP entry {info.filename!r} expands beyond its declared size (zip bomb?)",
                                entry=info.filename,
                            )
                        out.write(chunk)
        except RuntimeError as exc:  # zipfile raises this for encrypted data
            _remove(written)
            raise UnsafeArchiveError(f"cannot read ZIP entry: {exc}") from exc
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:  # zlib: corrupt deflate data
            _remove(written)
            raise InputError(f"the ZIP archive is damaged: {exc}") from exc
        except NotImplementedError as exc:  # a compression method zipfile cannot read
            _remove(written)
            raise InputError(f"the ZIP archive uses a compression method that is not supported: {exc}") from exc
        except BaseException:
            _remove(written)
            raise
    return written


def _remove(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)

