"""Request bodies as they arrive: every body capped at its limit whatever the transfer encoding, uploads spooled under the data directory."""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputError, UploadTooLargeError
from .settings import Settings

try:  # python-multipart >= 0.0.13 (the module was called `multipart` before)
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # pragma: no cover - older python-multipart
    from multipart.exceptions import FormParserError  # type: ignore[no-redef]
    from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]

UPLOAD_PATHS = frozenset({"/v1/process-scan", "/portal/jobs"})  # the routes that take a scan_zip
FORM_OVERHEAD = 64 * 1024  # what an upload's body may hold beyond its file: boundaries, part headers, text fields
OTHER_BODY_LIMIT = 1024 * 1024  # every other route's body (the portal's forms are a few hundred bytes)
FIELD_LIMIT = 8 * 1024  # one text field's value
HEADER_LIMIT = 8 * 1024  # one part's headers together
MAX_PARTS = 32


def new_upload_folder(settings: Settings) -> Path:
    """A fresh folder under the data directory's tmp/ (0700) for one upload; the sweeper removes stale ones."""
    settings.make_dirs()
    folder = settings.tmp_dir / f"upload-{uuid.uuid4()}"
    folder.mkdir(mode=0o700)
    return folder


class SpoolFile:
    """An upload written to disk as it arrives (0600), counted against the limit and hashed on the way."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path, self.limit, self.limit_mb = path, settings.max_upload_bytes, settings.max_upload_mb
        self.size = 0
        self._digest = hashlib.sha256()
        self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise UploadTooLargeError(f"the upload is over the limit of {self.limit_mb} MB", limit_mb=self.limit_mb)
        self._digest.update(data)
        self._file.write(data)

    def close(self) -> None:
        self._file.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


@dataclass
class ReceivedUpload:
    """A multipart upload read to its end: the file spooled in ``folder``, the text fields, the client's filename."""

    folder: Path
    fields: dict[str, str] = field(default_factory=dict)
    spool: Optional[SpoolFile] = None
    filename: Optional[str] = None

    def discard(self) -> None:
        """Remove the spooled upload (nothing to do once it was moved into its job's folder)."""
        if self.spool is not None:
            self.spool.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class _Parts:
    """The parser's callbacks: the file part goes to disk, known text fields to memory (each capped), others
    are skipped; a second file part or a repeated field is refused (which one would count is anyone's guess)."""

    def __init__(self, upload: ReceivedUpload, settings: Settings, file_field: str, text_fields: frozenset[str]):
        self.upload, self.settings, self.file_field, self.text_fields = upload, settings, file_field, text_fields
        self.parts = 0
        self.ended = False
        self._reset()

    def _reset(self) -> None:
        self.header_name, self.header_value = bytearray(), bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0
        self.kind: Optional[str] = None  # "file", "text" or "skip"
        self.name = ""
        self.value = bytearray()

    # -- callbacks (python-multipart calls them from write(); what they raise comes out of write) ---------------
    def on_part_begin(self) -> None:
        self._reset()
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InputError(f"the form has more than {MAX_PARTS} parts")

    def _count_header(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > HEADER_LIMIT:
            raise InputError(f"a part of the form has more than {HEADER_LIMIT // 1024} KiB of headers")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_name).strip().lower()] = bytes(self.header_value)
        self.header_name, self.header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get(b"content-disposition", b"").decode("latin-1"))
        if disposition != b"form-data" or b"name" not in options:
            raise InputError("a part of the form has no Content-Disposition: form-data; name=...")
        try:
            self.name = options[b"name"].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("a form field's name is not UTF-8") from exc
        upload = self.upload
        if self.name == self.file_field:
            if upload.spool is not None:
                raise InputError(f"the form has two {self.file_field} files; send one per request",
                                 field=self.file_field)
            upload.spool = SpoolFile(upload.folder / "upload.zip", self.settings)
            upload.filename = options.get(b"filename", b"").decode("utf-8", errors="replace") or None
            self.kind = "file"
        elif self.name in self.text_fields:
            if self.name in upload.fields:
                raise InputError(f"the form field {self.name} is given twice", field=self.name)
            self.kind = "text"
        else:
            self.kind = "skip"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.kind == "file":
            assert self.upload.spool is not None
            self.upload.spool.write(data[start:end])
        elif self.kind == "text":
            if len(self.value) + (end - start) > FIELD_LIMIT:
                raise InputError(f"the form field {self.name} is longer than {FIELD_LIMIT} bytes", field=self.name)
            self.value += data[start:end]

    def on_part_end(self) -> None:
        if self.kind == "text":
            try:
                self.upload.fields[self.name] = self.value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"the form field {self.name} is not UTF-8 text", field=self.name) from exc
        elif self.kind == "file":
            assert self.upload.spool is not None
            self.upload.spool.close()

    def on_end(self) -> None:
        self.ended = True

    def callbacks(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (
            "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
            "on_part_data", "on_part_end", "on_end")}


async def read_upload(request: Request, settings: Settings, file_field: str = "scan_zip",
                      text_fields: Iterable[str] = ()) -> ReceivedUpload:
    """Read a multipart/form-data body as it arrives: ``file_field`` is spooled under the data directory, the
    ``text_fields`` are kept (each at most FIELD_LIMIT bytes), other parts are skipped.

    Call it after the caller was authenticated: nothing of the body is read before. The body as a whole is
    capped by BodyLimit, the file by BIQE_MAX_UPLOAD_MB. Anything wrong (malformed, truncated, too large,
    a second file, the client gone) removes what was spooled before the error leaves this function.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise InputError(f"{file_field}: Field required (send multipart/form-data with the ZIP as {file_field})",
                         field=file_field)
    upload = ReceivedUpload(folder=new_upload_folder(settings))
    parts = _Parts(upload, settings, file_field, frozenset(text_fields))
    try:
        try:
            parser = MultipartParser(params[b"boundary"], parts.callbacks())
            async for chunk in request.stream():
                if chunk:
                    parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            raise InputError(f"the multipart body is malformed: {exc}") from exc
        except ValueError as exc:  # a boundary python-multipart refuses
            raise InputError(f"the multipart body is malformed: {exc}") from exc
        if not parts.ended:
            raise InputError("the multipart body ends before its closing boundary (a truncated upload?)")
        if upload.spool is None:
            raise InputError(f"{file_field}: Field required (a ZIP file of page images)", field=file_field)
        return upload
    except BaseException:
        upload.discard()
        raise


def _413(message: str) -> tuple[Message, Message]:
    import json

    body = json.dumps(UploadTooLargeError(message).to_dict()).encode()
    start = {"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]}
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    """ASGI middleware: a request body over its limit is answered 413 (JSON) as soon as the limit is passed,
    whatever the transfer encoding (Content-Length is judged before a byte is read; chunked bodies are counted
    as they arrive). Uploads (UPLOAD_PATHS) may be BIQE_MAX_UPLOAD_MB plus the form's overhead; other bodies
    OTHER_BODY_LIMIT."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.upload_limit = settings.max_upload_bytes + FORM_OVERHEAD
        self.upload_message = f"the upload is over the limit of {settings.max_upload_mb} MB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"].rstrip("/") in UPLOAD_PATHS
        limit = self.upload_limit if upload else OTHER_BODY_LIMIT
        message = self.upload_message if upload else f"the request body is over {OTHER_BODY_LIMIT // 1024} KiB"
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            for part in _413(message):
                await send(part)
            return
        received = 0
        over = replaced = started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    over = True
                    raise UploadTooLargeError(message)
            return incoming

        async def guarded_send(outgoing: Message) -> None:
            nonlocal replaced, started
            if replaced:
                return
            if outgoing["type"] == "http.response.start":
                if over and outgoing["status"] != 413:  # e.g. a form parser that made its own 400 of our error
                    replaced = True
                    for part in _413(message):
                        await send(part)
                    return
                started = True
            await send(outgoing)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except ClientDisconnect:  # the client went away mid-body: nobody to answer (the route removed its spool)
            return
        except Exception:
            if not over:
                raise
            if not (started or replaced):
                for part in _413(message):
                    await send(part)
