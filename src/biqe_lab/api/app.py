"""The FastAPI app: routes of the published job API, auth dependencies and the API's one error translator."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import BiqeError
from ..defaults import PDF_FORMATS, PIPELINE_STEPS
from ..version import __version__
from .dispatch import make_dispatcher
from .jobs import OPTION_FIELDS, cancel_job, created_body, job_view, result_path, submit_job
from .settings import Settings
from .store import Store
from .uploads import BodyLimit, read_upload
from .validation import DEFAULT_LLM_TIER, DEFAULT_PDF_FORMAT, DEFAULT_PRESET, LLM_TIERS, PRESETS

# -- response models (the OpenAPI schema; bodies are built by job_view) ---------------------------
_JOB_ID = "3f0c8a52-1d5e-4a7b-9a51-6c2f0f1f9e10"
_BASE = "https://biqe.example.org/v1/process-scan/" + _JOB_ID


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "unsafe_archive", "message": "ZIP entry 'p1.jpg' is password-protected; upload an unencrypted ZIP"}]})
    error: str = Field(description="Stable error code (see biqe_lab.errors)")
    message: str
    details: Optional[dict[str, str]] = None


class JobCreated(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "job_id": _JOB_ID, "state": "queued", "page_count": 2, "created_at": "2026-11-30T04:00:00.000Z",
        "expires_at": "2026-12-07T04:00:00.000Z", "status_url": _BASE, "result_url": _BASE + "/result"}]})
    job_id: str
    state: str
    page_count: int
    created_at: str
    expires_at: str
    status_url: str
    result_url: str


class WebhookInfo(BaseModel):
    attempts: int
    last_status: Optional[int]
    delivered: bool


class JobStatus(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "job_id": _JOB_ID, "state": "done", "page_count": 2, "current_step": None,
        "created_at": "2026-11-30T04:00:00.000Z", "started_at": "2026-11-30T04:00:01.000Z",
        "finished_at": "2026-11-30T04:01:40.000Z", "expires_at": "2026-12-07T04:00:00.000Z",
        "error_message": None, "warning_message": "LLM correction did not run: ...",
        "result_url": _BASE + "/result", "result_expired": False,
        "webhook": {"attempts": 1, "last_status": 200, "delivered": True}}]})
    job_id: str
    state: str = Field(description="queued | processing | done | failed | cancelled")
    page_count: int
    current_step: Optional[str] = Field(description="'<page>: <step>' while processing")
    created_at: str
    started_at: Optional[str]
    finished_at: Optional[str]
    expires_at: str
    error_message: Optional[str]
    warning_message: Optional[str]
    result_url: Optional[str] = Field(None, description="present only when state == 'done' and the result has not "
                                                        "expired")
    result_expired: bool = Field(False, description="expires_at passed: the result is (being) deleted")
    llm_tier: str
    preset: str
    pdf_format: str
    pipeline_steps: list[str]
    webhook: Optional[WebhookInfo] = Field(None, description="present when the job has a webhook_url")


class UsageMonth(BaseModel):
    month: str
    pages: int
    jobs: int


class Usage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "account_id": "9b1f...", "total_pages": 12, "months": [{"month": "2026-11", "pages": 12, "jobs": 3}]}]})
    account_id: str
    total_pages: int = Field(description="pages of done jobs (failed jobs are not billed)")
    months: list[UsageMonth]


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, invalid or revoked API key"},
    404: {"model": ErrorBody, "description": "unknown job (or another account's)"},
}


# -- dependencies (all in one place) ----------------------------------------------------------------
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="biqe_live_...")
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer biqe_live_...")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]


def get_account(store: StoreDep, api_key: Annotated[Optional[str], Depends(_api_key_header)],
                bearer: Annotated[Optional[HTTPAuthorizationCredentials], Depends(_bearer)]) -> dict:
    """The caller's account from ``X-API-Key`` or ``Authorization: Bearer``; 401 otherwise (before any byte of
    the body is read: routes that take a body read it themselves, see read_upload)."""
    return store.authenticate(api_key or (bearer.credentials if bearer else None))


AccountDep = Annotated[dict, Depends(get_account)]


# -- the error translator -------------------------------------------------------------------------
def _error(status: int, code: str, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def install_error_translator(app: FastAPI) -> None:
    """BiqeError -> its http_status and {"error": code, "message": ...}; other errors in the same shape."""

    @app.exception_handler(BiqeError)
    async def _biqe(request: Request, exc: BiqeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
                             for e in exc.errors())
        return _error(400, "invalid_input", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", "internal server error")


_FIELD_DOCS: dict[str, dict[str, Any]] = {
    "llm_tier": {"description": " | ".join(LLM_TIERS), "default": DEFAULT_LLM_TIER, "examples": [DEFAULT_LLM_TIER]},
    "preset": {"description": "document type (auto: chosen from the recognized text): " + ", ".join(PRESETS), "default": DEFAULT_PRESET,
               "examples": [DEFAULT_PRESET]},
    "webhook_url": {"description": "HTTPS URL; empty = no callback", "default": "",
                    "examples": ["https://example.org/biqe-hook"]},
    "pipeline_steps": {"description": "comma-separated subset of " + ",".join(PIPELINE_STEPS), "default": "",
                       "examples": [",".join(PIPELINE_STEPS)]},
    "pdf_format": {"description": " | ".join(PDF_FORMATS), "default": DEFAULT_PDF_FORMAT,
                   "examples": [DEFAULT_PDF_FORMAT]},
}
# The submission's body as published (the route reads it itself, as it arrives: see read_upload).
SUBMIT_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "title": "Body_submit_v1_process_scan_post", "type": "object", "required": ["scan_zip"],
    "properties": {
        "scan_zip": {"type": "string", "contentMediaType": "application/octet-stream", "title": "Scan Zip",
                     "description": "ZIP with one image per page (JPEG, PNG, TIFF)"},
        **{name: {"type": "string", "title": name.replace("_", " ").title(), "maxLength": 8192,
                  **_FIELD_DOCS[name]} for name in OPTION_FIELDS}}}}}}


# -- the app --------------------------------------------------------------------------------------
def create_app(settings: Optional[Settings] = None) -> FastAPI:
    """The job API over the store in ``settings.data_dir`` (routes touch only the store and job files)."""
    settings = settings or Settings.from_env()
    settings.make_dirs()  # 0700
    app = FastAPI(title="BIQE job API", version=__version__,
                  description="Handwritten text recognition jobs: upload a ZIP of page images, poll, fetch "
                              "PageXML/ALTO (and a searchable PDF) as a ZIP; signed webhooks on completion.")
    app.state.settings = settings
    app.state.store = Store(settings.db_url)
    app.state.dispatcher = make_dispatcher(settings, app.state.store)  # BIQE_QUEUE: local polling or Celery
    install_error_translator(app)
    from .portal import router as portal_router  # the customer portal at /portal
    app.include_router(portal_router)

    app.add_middleware(BodyLimit, settings=settings)  # 413 at the limit, chunked or not, before the route reads

    @app.get("/healthz", tags=["service"])
    def healthz(store: StoreDep) -> dict[str, str]:
        """200 once the server is up and its database answers."""
        store.ping()
        return {"status": "ok", "version": __version__}

    @app.post("/v1/process-scan", status_code=202, response_model=JobCreated, tags=["jobs"],
              responses={**_ERRORS, 400: {"model": ErrorBody, "description": "invalid input; nothing stored"},
                         409: {"model": ErrorBody, "description": "Idempotency-Key reused with another body"},
                         413: {"model": ErrorBody, "description": "upload, archive, page count or pixels over a "
                                                                   "limit"}},
              openapi_extra={"requestBody": SUBMIT_BODY})
    async def submit(request: Request, account: AccountDep, store: StoreDep, settings: SettingsDep,
                     idempotency_key: Annotated[Optional[str], Header(alias="Idempotency-Key")] = None) \
            -> JSONResponse:
        """Submit a scan: validated (size, ZIP safety, pixels, decodable images, options), stored, queued; 202.

        The key is checked before the body is read; the body is spooled under the data directory as it arrives.
        """
        upload = await read_upload(request, settings, "scan_zip", OPTION_FIELDS)
        try:
            options = {name: upload.fields.get(name, "") for name in OPTION_FIELDS}
            stored = await run_in_threadpool(submit_job, settings, store, request.app.state.dispatcher, account,
                                             upload, str(request.base_url), idempotency_key=idempotency_key,
                                             **options)
        finally:
            upload.discard()  # moved into the job's folder when accepted; removed otherwise
        return JSONResponse(created_body(stored), status_code=202)

    @app.get("/v1/process-scan/{job_id}", response_model=JobStatus, response_model_exclude_unset=True,
             tags=["jobs"], responses=_ERRORS)
    def job_status(job_id: str, account: AccountDep, store: StoreDep) -> dict[str, Any]:
        """The job's state, current step, timings and messages; ``result_url`` when done."""
        return job_view(store.job(job_id, account["id"]), store)

    @app.get("/v1/process-scan/{job_id}/result", tags=["jobs"], response_class=FileResponse,
             responses={**_ERRORS, 200: {"content": {"application/zip": {}},
                                         "description": "PageXML, ALTO, document.json and the PDF"}})
    def job_result(job_id: str, account: AccountDep, store: StoreDep, settings: SettingsDep) -> FileResponse:
        """The result ZIP of a done job until ``expires_at``; 404 (saying why) otherwise."""
        path = result_path(settings, store, job_id, account["id"])
        return FileResponse(path, media_type="application/zip", filename=f"{job_id}.zip")

    @app.delete("/v1/process-scan/{job_id}", response_model=JobStatus, response_model_exclude_unset=True,
                tags=["jobs"],
                responses={**_ERRORS, 409: {"model": ErrorBody, "description": "the job already ended"}})
    def job_cancel(request: Request, job_id: str, account: AccountDep, store: StoreDep) -> dict[str, Any]:
        """Cancel a queued or processing job (a running pipeline stops at the next page or step)."""
        return job_view(cancel_job(store, request.app.state.dispatcher, job_id, account["id"]), store)

    @app.get("/v1/usage", response_model=Usage, tags=["account"], responses={401: _ERRORS[401]})
    def usage(account: AccountDep, store: StoreDep) -> dict[str, Any]:
        """Billed pages per month (done jobs only; failed jobs are not billed)."""
        months = store.usage(account["id"])
        return {"account_id": account["id"], "total_pages": sum(m["pages"] for m in months), "months": months}

    return app

