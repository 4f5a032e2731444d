"""The one exception tree of biqe_lab: every error has a stable code, an exit code and an HTTP status."""
from __future__ import annotations


class BiqeError(Exception):
    """Base of every error biqe_lab raises on purpose.

    ``code`` is stable (API bodies, job records and tests rely on it), ``exit_code`` is what
    the CLI returns and ``http_status`` what the API answers.
    """

    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = {k: str(v) for k, v in self.details.items()}
        return body


class InputError(BiqeError):
    """The user's input cannot be used (file missing, wrong format, bad option)."""

    code = "invalid_input"
    exit_code = 2
    http_status = 400


class UnsafeArchiveError(InputError):
    """A ZIP archive was refused: encrypted entry, path escape, symlink, or a zip bomb."""

    code = "unsafe_archive"
    exit_code = 3


class ArchiveTooLargeError(UnsafeArchiveError):
    """A ZIP archive exceeds a configured limit (size, ratio, page count)."""

    code = "archive_too_large"
    http_status = 413


class UploadTooLargeError(InputError):
    """An upload (its body, whatever the transfer encoding) is over the configured size limit."""

    code = "upload_too_large"
    http_status = 413


class ImageTooLargeError(InputError):
    """A page image, or a job's pages together, has more pixels than the configured limit.

    Checked from the image headers before anything is decoded (a small file can declare a huge
    image: a "pixel bomb").
    """

    code = "image_too_large"
    exit_code = 5
    http_status = 413


class NoImagesError(InputError):
    """The input holds no page image at all."""

    code = "no_images"
    exit_code = 4


class ImageDecodeError(InputError):
    """A file that looks like an image cannot be decoded; the message names the file."""

    code = "bad_image"
    exit_code = 5


class GroundTruthError(InputError):
    """A PageXML/ALTO file cannot be read or does not match its image."""

    code = "bad_ground_truth"
    exit_code = 6


class ModelError(BiqeError):
    """A model file is missing, unreadable or of the wrong kind."""

    code = "model_error"
    exit_code = 7
    http_status = 400


class EngineError(BiqeError):
    """An engine (kraken, tesseract) failed while processing a page."""

    code = "engine_error"
    exit_code = 8


class DependencyMissingError(EngineError):
    """An external program the chosen engine needs (e.g. tesseract) is not installed."""

    code = "dependency_missing"
    exit_code = 9


class ExportError(BiqeError):
    """An export could not be written or failed schema validation."""

    code = "export_error"
    exit_code = 10


class PagesFailedError(BiqeError):
    """Some pages failed and were recorded (``--keep-going``); the others were processed and exported."""

    code = "pages_failed"
    exit_code = 11
    http_status = 500


class NotebookError(BiqeError):
    """A notebook run by `biqe-lab batch` failed in one of its cells (its report shows the error)."""

    code = "notebook_failed"
    exit_code = 12


class DatabaseError(BiqeError):
    """The job store's database cannot be reached, or its schema is newer than this build knows."""

    code = "database_error"
    exit_code = 13
    http_status = 503


# -- the job API's own refusals (raised by the store, the accounts and the portal) -------------------------
class AuthError(BiqeError):
    """The request carries no API key, or one that is unknown or revoked."""

    code = "unauthorized"
    exit_code = 2
    http_status = 401


class NotFoundError(BiqeError):
    """Unknown job, account, key or user (or another account's job: the answer is the same)."""

    code = "not_found"
    exit_code = 2
    http_status = 404


class ResultNotReadyError(NotFoundError):
    """The job has no result (yet, or ever: failed or cancelled)."""

    code = "result_not_ready"


class ResultGoneError(NotFoundError):
    """The result expired and the sweeper deleted it."""

    code = "result_expired"


class ConflictError(BiqeError):
    """The request conflicts with the job's state (cancel a finished job, reuse an idempotency key)."""

    code = "conflict"
    exit_code = 2
    http_status = 409


class SignInError(BiqeError):
    """Unknown email or wrong password (the message never says which)."""

    code = "sign_in_failed"
    exit_code = 2
    http_status = 401


class TooManyAttemptsError(BiqeError):
    """Too many failed sign-ins for one email from one address: wait before trying again."""

    code = "too_many_attempts"
    exit_code = 2
    http_status = 429


class CsrfRefused(BiqeError):
    """A portal form arrived without the right CSRF token (or from another site)."""

    code = "csrf_refused"
    exit_code = 2
    http_status = 403


class CancelledError(BiqeError):
    """The run was cancelled by its caller (between pages or steps)."""

    code = "cancelled"
    exit_code = 130
    http_status = 409
