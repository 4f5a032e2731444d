"""The customer portal at /portal: sign-in, API keys, webhook secret and deliveries, jobs, a read-only result viewer, usage."""
from __future__ import annotations

import functools
import hmac
import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..errors import (BiqeError, ConflictError, CsrfRefused, InputError, NotFoundError, SignInError,
                      TooManyAttemptsError)
from ..defaults import PDF_FORMATS
from .settings import Settings
from .jobs import OPTION_FIELDS, cancel_job, result_path, submit_job
from .schema import api_keys as api_keys_table
from .store import TERMINAL, Store, hash_key, parse_iso
from .uploads import ReceivedUpload, read_upload
from .users import SESSION_HOURS, PortalSession, Users
from .validation import DEFAULT_LLM_TIER, DEFAULT_PDF_FORMAT, DEFAULT_PRESET, LLM_TIERS, PRESETS

HERE = Path(__file__).resolve().parent
STATIC_FILES = {"portal.css": "text/css", "portal.js": "text/javascript"}
SESSION_COOKIE = "biqe_portal"
LOGIN_CSRF_COOKIE = "biqe_portal_signin"
NEW_KEY_COOKIE = "biqe_portal_new_key"  # carries a just-created key across its redirect, once
COOKIE_PATH = "/portal"
KEYS_PATH = COOKIE_PATH + "/settings/api-keys"

# The step sets the upload form offers (values of the API's pipeline_steps).
STEP_CHOICES = (
    ("layout,recognition,correction,export", "Layout, recognition, LLM correction, export (all)"),
    ("layout,recognition,export", "Layout, recognition, export (no LLM correction)"),
    ("layout,export", "Layout and export only (lines without text)"),
)
# Notices after a redirect: ?notice=<key> selects one of these fixed texts (nothing from the URL is shown).
NOTICES = {
    "key-revoked": "The API key was revoked. Requests that use it are refused from now on.",
    "job-submitted": "Your scan was uploaded and queued.",
    "job-cancelled": "The job was cancelled.",
    "redelivery-queued": "The webhook delivery was queued again; it is sent within seconds.",
    "signed-out": "You have signed out.",
}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")

router = APIRouter(prefix="/portal", include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))


class NotSignedIn(Exception):
    """No live session: the browser goes to the sign-in page."""


# -- helpers --------------------------------------------------------------------------------------
def _store(request: Request) -> Store:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _users(request: Request) -> Users:
    return Users(_store(request))


def _secure(request: Request) -> bool:
    """Cookies are Secure when this request came over https or the server's public URL is https."""
    public_url = getattr(_settings(request), "public_url", None) or ""
    return request.url.scheme == "https" or public_url.startswith("https://")


def _when(value: Optional[str]) -> str:
    """An ISO timestamp of the store as ``2026-11-30 04:00 UTC`` (the browser shows local time when it can)."""
    dt = parse_iso(value) if value else None
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else ""


def _month(value: str) -> str:
    return datetime.strptime(value, "%Y-%m").strftime("%B %Y")


templates.env.filters["when"] = _when
templates.env.filters["month"] = _month
templates.env.globals["static"] = lambda name: f"{COOKIE_PATH}/static/{name}"


def _headers(response: Response) -> Response:
    """Every portal page: not cached (keys and secrets appear on them), not framed, scripts from here only."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = CSP
    return response


def render(request: Request, template: str, status_code: int = 200, session: Optional[PortalSession] = None,
           **context: Any) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    response = templates.TemplateResponse(request, template, {"session": session, "notice": notice, **context},
                                          status_code=status_code)
    return _headers(response)  # type: ignore[return-value]


def redirect(path: str) -> RedirectResponse:
    return _headers(RedirectResponse(path, status_code=303))  # type: ignore[return-value]


def _same_origin(request: Request) -> bool:
    """A POST whose Origin (when the browser sends one) is this server."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


def current_session(request: Request) -> PortalSession:
    session = _users(request).session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn()
    return session


def check_csrf(request: Request, session: PortalSession, token: str) -> None:
    if not _same_origin(request):
        raise CsrfRefused("This form was sent from another site and was refused.")
    if not token or not hmac.compare_digest(token, session.csrf_token):
        raise CsrfRefused("This form has no valid security token (CSRF) and was refused. "
                          "Reload the page and try again.")


def page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """The portal's error boundary: no session -> sign-in page; BiqeError -> an error page with its status."""

    @functools.wraps(handler)
    def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return handler(request, *args, **kwargs)
        except NotSignedIn:
            if request.method == "GET":
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return redirect(f"{COOKIE_PATH}/login?next={quote(target)}")
            return redirect(f"{COOKIE_PATH}/login")
        except BiqeError as exc:
            session = _users(request).session(request.cookies.get(SESSION_COOKIE))
            return render(request, "error.html", exc.http_status, session=session, error=exc,
                          title={403: "Refused", 404: "Not found"}.get(exc.http_status, "Something went wrong"))

    return wrapper


def async_page(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``page`` for a handler that reads its body itself (an upload): the same boundary, run on the event loop."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(request, *args, **kwargs)
        except NotSignedIn:
            return redirect(f"{COOKIE_PATH}/login")
        except BiqeError as exc:
            def error_page() -> Response:
                session = _users(request).session(request.cookies.get(SESSION_COOKIE))
                return render(request, "error.html", exc.http_status, session=session, error=exc,
                              title={403: "Refused", 404: "Not found"}.get(exc.http_status, "Something went wrong"))

            return await run_in_threadpool(error_page)

    return wrapper


def _account(request: Request, session: PortalSession) -> dict:
    row = _store(request).account_by_id(session.account_id)
    return {k: row[k] for k in ("id", "name", "webhook_secret", "created_at")}


def _safe_next(target: Optional[str]) -> str:
    """Only a path of the portal itself (never another site) is a place to go after signing in."""
    if target and target.startswith(COOKIE_PATH + "/") and not target.startswith("//") and "\\" not in target \
            and not target.startswith(COOKIE_PATH + "/login"):
        return target
    return f"{COOKIE_PATH}/jobs"


# -- static files ----------------------------------------------------------------------------------
@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(HERE / "static" / name, media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "public, max-age=300"})


# -- signing in and out ----------------------------------------------------------------------------
@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    return redirect(f"{COOKIE_PATH}/jobs")


def _login_page(request: Request, status_code: int = 200, error: Optional[str] = None, email: str = "",
                next_path: str = "", headers: Optional[dict[str, str]] = None) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", status_code, csrf_token=token, error=error, email=email,
                      next_path=next_path)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=_secure(request))
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    if _users(request).session(request.cookies.get(SESSION_COOKIE)) is not None:
        return redirect(_safe_next(next))
    return _login_page(request, next_path=next)


@router.post("/login")
def login(request: Request, email: str = Form(""), password: str = Form(""), csrf_token: str = Form(""),
          next: str = Form("")) -> Response:
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _same_origin(request) or not csrf_token or not cookie_token \
            or not hmac.compare_digest(csrf_token, cookie_token):
        return _login_page(request, 403, error="This sign-in form has no valid security token (CSRF) and was "
                                               "refused. Reload the page and try again.", email=email,
                           next_path=next)
    client_ip = request.client.host if request.client else "unknown"
    try:
        _session, token = _users(request).sign_in(email, password, client_ip)
    except TooManyAttemptsError as exc:
        return _login_page(request, 429, error=exc.message, email=email, next_path=next,
                           headers={"Retry-After": str(exc.details.get("retry_after", 900))})
    except SignInError as exc:
        return _login_page(request, 401, error=exc.message, email=email, next_path=next)
    response = redirect(_safe_next(next))
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_HOURS * 3600), path=COOKIE_PATH,
                        httponly=True, samesite="lax", secure=_secure(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
@page
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    session = current_session(request)
    check_csrf(request, session, csrf_token)
    _users(request).sign_out(request.cookies.get(SESSION_COOKIE))
    response = redirect(f"{COOKIE_PATH}/login?notice=signed-out")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax",
                           secure=_secure(request))
    return response


# -- Settings > API keys ---------------------------------------------------------------------------
def _keys_page(request: Request, session: PortalSession, status_code: int = 200, **context: Any) -> Response:
    keys = sorted(_store(request).list_keys(session.account_id),
                  key=lambda k: (k["revoked_at"] is not None, k["created_at"]), reverse=False)
    return render(request, "api_keys.html", status_code, session=session, keys=keys, section="api-keys",
                  **context)


@router.get("/settings/api-keys")
@page
def api_keys(request: Request) -> Response:
    """The keys; once after a creation (the redirect's cookie) the new key itself, then never again."""
    session = current_session(request)
    carried = request.cookies.get(NEW_KEY_COOKIE)
    context: dict[str, Any] = {}
    if carried:
        k = api_keys_table.c
        record = _store(request)._one(api_keys_table.select().where(
            k.key_hash == hash_key(carried), k.account_id == session.account_id, k.revoked_at.is_(None)))
        if record is not None:  # a key of this account, not anything a cookie may say
            context = {"new_key": carried, "new_record": record}
    response = _keys_page(request, session, **context)
    if carried:
        response.delete_cookie(NEW_KEY_COOKIE, path=KEYS_PATH, httponly=True, samesite="strict",
                               secure=_secure(request))
    return response


@router.post("/settings/api-keys")
@page
def api_keys_create(request: Request, label: str = Form(""), csrf_token: str = Form("")) -> Response:
    """Create a key, then redirect (post/redirect/get: a reload shows the list, it creates nothing). The key
    travels to the next page in a short-lived HttpOnly cookie scoped to that page, deleted once shown."""
    session = current_session(request)
    check_csrf(request, session, csrf_token)
    label = label.strip()
    if not label or len(label) > 80:
        return _keys_page(request, session, 400, form_error="Give the key a label of 1 to 80 characters "
                                                            "(for example the app or server that will use it).",
                          label=label[:80])
    _record, key = _store(request).create_key(session.account_id, label)
    response = redirect(KEYS_PATH)
    response.set_cookie(NEW_KEY_COOKIE, key, max_age=120, path=KEYS_PATH, httponly=True, samesite="strict",
                        secure=_secure(request))
    return response


@router.post("/settings/api-keys/{key_id}/revoke")
@page
def api_keys_revoke(request: Request, key_id: str, csrf_token: str = Form(""), confirmed: str = Form("")) -> Response:
    session = current_session(request)
    check_csrf(request, session, csrf_token)
    store = _store(request)
    key = next((k for k in store.list_keys(session.account_id) if k["id"] == key_id), None)
    if key is None:  # unknown, or another account's: the same answer
        raise NotFoundError("There is no such API key in your account.")
    if confirmed != "yes":
        return render(request, "confirm.html", session=session, section="api-keys",
                      title=f"Revoke the key “{key['label']}”?",
                      text=f"Apps and servers that use {key['prefix']}… will be refused (401) from their next "
                           "request. This cannot be undone.",
                      action=f"{COOKIE_PATH}/settings/api-keys/{key_id}/revoke", button="Revoke key",
                      back=f"{COOKIE_PATH}/settings/api-keys")
    store.revoke_key(key_id)
    return redirect(f"{COOKIE_PATH}/settings/api-keys?notice=key-revoked")


# -- Settings > Webhooks ---------------------------------------------------------------------------
def _webhooks_page(request: Request, session: PortalSession, **context: Any) -> Response:
    deliveries = _store(request).list_deliveries(session.account_id, limit=20)
    return render(request, "webhooks.html", session=session, section="webhooks", deliveries=deliveries, **context)


@router.get("/settings/webhooks")
@page
def webhooks(request: Request) -> Response:
    return _webhooks_page(request, current_session(request))


@router.post("/settings/webhooks/reveal")
@page
def webhooks_reveal(request: Request, csrf_token: str = Form("")) -> Response:
    session = current_session(request)
    check_csrf(request, session, csrf_token)
    return _webhooks_page(request, session, secret=_account(request, session)["webhook_secret"])


@router.post("/settings/webhooks/rotate")
@page
def webhooks_rotate(request: Request, csrf_token: str = Form(""), confirmed: str = Form("")) -> Response:
    session = current_session(request)
    check_csrf(request, session, csrf_token)
    if confirmed != "yes":
        return render(request, "confirm.html", session=session, section="webhooks",
                      title="Rotate the webhook secret?",
                      text="Webhooks are signed with the new secret from now on, including retries of earlier "
                           "events. Update your receiver with the new secret at once.",
                      action=f"{COOKIE_PATH}/settings/webhooks/rotate", button="Rotate secret",
                      back=f"{COOKIE_PATH}/settings/webhooks")
    account = _store(request).rotate_secret(session.account_id)
    return _webhooks_page(request, session, secret=account["webhook_secret"], rotated=True)


@router.post("/settings/webhooks/deliveries/{delivery_id}/redeliver")
@page
def webhooks_redeliver(request: Request, delivery_id: int, csrf_token: str = Form("")) -> Response:
    session = current_session(request)
    check_csrf(request, session, csrf_token)
    _store(request).redeliver(delivery_id, session.account_id)
    return redirect(f"{COOKIE_PATH}/settings/webhooks?notice=redelivery-queued")


# -- Jobs --------------------------------------------------------------------------------------------
def _jobs(request: Request, session: PortalSession) -> list[dict]:
    from .jobs import job_view

    store = _store(request)
    rows = []
    for job in store.list_jobs(session.account_id, limit=100):
        view = job_view(job, store)
        view["filename"] = json.loads(job["options"] or "{}").get("filename", "")
        view["downloadable"] = job["state"] == "done" and not view["result_expired"]
        view["cancellable"] = job["state"] not in TERMINAL
        rows.append(view)
    return rows


def _jobs_page(request: Request, session: PortalSession, status_code: int = 200, **context: Any) -> Response:
    form = {"llm_tier": DEFAULT_LLM_TIER, "preset": DEFAULT_PRESET, "pdf_format": DEFAULT_PDF_FORMAT,
            "pipeline_steps": STEP_CHOICES[0][0], "webhook_url": "", **context.pop("form", {})}
    settings = _settings(request)
    return render(request, "jobs.html", status_code, session=session, section="jobs", jobs=_jobs(request, session),
                  form=form, tiers=LLM_TIERS, presets=PRESETS, pdf_formats=PDF_FORMATS, step_choices=STEP_CHOICES,
                  max_upload_mb=settings.max_upload_mb, max_pages=settings.max_pages, **context)


@router.get("/jobs")
@page
def jobs(request: Request) -> Response:
    return _jobs_page(request, current_session(request))


@router.get("/jobs/table")
@page
def jobs_table(request: Request) -> Response:
    """The jobs table alone: the page's script refreshes it while a job is queued or processing."""
    session = current_session(request)
    return render(request, "jobs_table.html", session=session, jobs=_jobs(request, session))


@router.post("/jobs")
@async_page
async def jobs_submit(request: Request) -> Response:
    """The upload form: the session is checked before the body is read; the body is read as the API's route reads
    it (spooled under the data directory, capped) and submitted by the API's own code (the same validation)."""
    session = await run_in_threadpool(current_session, request)
    if not _same_origin(request):
        raise CsrfRefused("This form was sent from another site and was refused.")
    settings = _settings(request)
    upload: Optional[ReceivedUpload] = None
    form = {name: "" for name in OPTION_FIELDS}
    try:
        try:
            upload = await read_upload(request, settings, "scan_zip", (*OPTION_FIELDS, "csrf_token"))
        except BiqeError as exc:  # the form's own page, with the API's message (a missing file said for people)
            shown = BiqeError("scan_zip: Field required (choose a ZIP file)") \
                if exc.message.startswith("scan_zip: Field required") else exc
            return await run_in_threadpool(lambda: _jobs_page(request, session, exc.http_status, form=form,
                                                              upload_error=shown))
        check_csrf(request, session, upload.fields.get("csrf_token", ""))
        form = {name: upload.fields.get(name, "") for name in OPTION_FIELDS}

        def submit() -> Response:
            try:  # the API's own submission code: the same validation, limits and messages
                job = submit_job(settings, _store(request), request.app.state.dispatcher, _account(request, session),
                                 upload, str(request.base_url), **form)
            except BiqeError as exc:
                return _jobs_page(request, session, exc.http_status, form=form, upload_error=exc)
            return redirect(f"{COOKIE_PATH}/jobs?notice=job-submitted#job-{job['id']}")

        return await run_in_threadpool(submit)
    finally:
        if upload is not None:
            upload.discard()


@router.get("/jobs/{job_id}/result")
@page
def jobs_result(request: Request, job_id: str) -> Response:
    session = current_session(request)
    path = result_path(_settings(request), _store(request), job_id, session.account_id)
    return FileResponse(path, media_type="application/zip", filename=f"{job_id}.zip",
                        headers={"Cache-Control": "no-store"})


# -- the read-only result viewer ------------------------------------------------------------------------
VIEW_IMAGE_WIDTH = 1600  # page images are sent downscaled to this width (JPEG)


def _job_document(request: Request, job_id: str, account_id: str):
    """The job's document.json, read from its result ZIP (the same checks as the download: done, not expired)."""
    import zipfile

    from ..model import Document

    path = result_path(_settings(request), _store(request), job_id, account_id)
    try:
        with zipfile.ZipFile(path) as archive:
            return Document.from_json(archive.read("document.json"))
    except (KeyError, OSError, InputError, zipfile.BadZipFile) as exc:
        raise NotFoundError(f"the result of job {job_id} holds no readable document.json") from exc


def _page_image_path(request: Request, job_id: str, page) -> Optional[Path]:
    """The page's image if it is still inside the job's own folder on the server (never any other path)."""
    folder = (_settings(request).jobs_dir / job_id).resolve()
    try:
        path = Path(page.image.path).resolve()
    except (OSError, ValueError):
        return None
    return path if path.is_relative_to(folder) and path.is_file() else None


def _points(points) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


@router.get("/jobs/{job_id}/view")
@page
def jobs_view(request: Request, job_id: str, page: int = 1, q: str = "", regex: str = "") -> Response:
    """A job's result, read-only: the page image with its line outlines, the text beside it, search."""
    from ..workbench.search import marked_html, search

    session = current_session(request)
    document = _job_document(request, job_id, session.account_id)
    if not document.pages:
        raise NotFoundError(f"the result of job {job_id} has no page")
    index = min(max(page, 1), len(document.pages)) - 1
    current = document.pages[index]
    hits, search_error = [], None
    query = q.strip()[:200]
    if query:
        try:
            hits = search(document, query, regex=bool(regex))
        except BiqeError as exc:
            search_error = exc.message
    on_page = {h.line_id: h for h in hits if h.page == current.name}
    lines = [{"number": n, "id": line.id, "points": _points(line.polygon), "baseline": _points(line.baseline),
              "text": line.text, "html": marked_html(line.text, on_page[line.id].spans) if line.id in on_page else None,
              "hit": line.id in on_page,
              "confidence": (line.variant("htr").confidence if line.variant("htr") else None)}
             for n, line in enumerate(current.lines, start=1)]
    pages_with_hits: dict[int, int] = {}
    names = [p.name for p in document.pages]
    for h in hits:
        pages_with_hits[names.index(h.page) + 1] = pages_with_hits.get(names.index(h.page) + 1, 0) + 1
    job = _store(request).job(job_id, session.account_id)
    return render(request, "viewer.html", session=session, section="jobs", title=f"Result of {job_id[:8]}",
                  job=job, job_id=job_id, document=document, page=current, page_number=index + 1,
                  pages=[(i + 1, p.name, len(p.lines)) for i, p in enumerate(document.pages)],
                  lines=lines, has_image=_page_image_path(request, job_id, current) is not None,
                  query=query, regex=bool(regex), hits=hits, hit_count=len(hits), pages_with_hits=pages_with_hits,
                  search_error=search_error, processing=document.processing)


@router.get("/jobs/{job_id}/pages/{number}/image")
@page
def jobs_page_image(request: Request, job_id: str, number: int) -> Response:
    """A page image of a job's result, downscaled (JPEG), for the viewer."""
    import io

    from PIL import Image

    from ..ingest import open_image

    session = current_session(request)
    document = _job_document(request, job_id, session.account_id)
    if not 1 <= number <= len(document.pages):
        raise NotFoundError(f"job {job_id} has no page {number}")
    page_ = document.pages[number - 1]
    path = _page_image_path(request, job_id, page_)
    if path is None:
        raise NotFoundError(f"the image of page {number} of job {job_id} is no longer on the server")
    image = open_image(page_.image.model_copy(update={"path": str(path)})).convert("RGB")
    if image.width > VIEW_IMAGE_WIDTH:
        image = image.resize((VIEW_IMAGE_WIDTH, round(image.height * VIEW_IMAGE_WIDTH / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return _headers(Response(buffer.getvalue(), media_type="image/jpeg"))


@router.post("/jobs/{job_id}/cancel")
@page
def jobs_cancel(request: Request, job_id: str, csrf_token: str = Form(""), confirmed: str = Form("")) -> Response:
    session = current_session(request)
    check_csrf(request, session, csrf_token)
    store = _store(request)
    job = store.job(job_id, session.account_id)
    if confirmed != "yes":
        return render(request, "confirm.html", session=session, section="jobs", title="Cancel this job?",
                      text=f"Job {job_id} stops at its next page boundary and is not billed.",
                      action=f"{COOKIE_PATH}/jobs/{job_id}/cancel", button="Cancel job", back=f"{COOKIE_PATH}/jobs")
    try:
        cancel_job(store, request.app.state.dispatcher, job["id"], session.account_id)  # revokes a queued task too
    except ConflictError as exc:
        return _jobs_page(request, session, 409, page_error=exc)
    return redirect(f"{COOKIE_PATH}/jobs?notice=job-cancelled")


# -- Usage -------------------------------------------------------------------------------------------
@router.get("/usage")
@page
def usage(request: Request) -> Response:
    session = current_session(request)
    months = list(reversed(_store(request).usage(session.account_id)))
    top = max((m["pages"] for m in months), default=0)
    return render(request, "usage.html", session=session, section="usage", months=months,
                  total_pages=sum(m["pages"] for m in months), total_jobs=sum(m["jobs"] for m in months), top=top)
