"""Fuzzing the upload path with raw bodies (malformed multipart, truncated bodies, huge field values, chunked or not): never a 5xx, always a JSON error, and nothing stored unless a job was accepted."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from test_api import Api, make_zip, page_files, settings  # noqa: F401 - fixtures

BOUNDARY = "fuzz-boundary-42"


def part(name: str, data: bytes, filename: str | None = None, boundary: str = BOUNDARY) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


MUTATIONS = ("none", "truncate", "flip", "insert", "no_closing", "lf_only", "duplicate_file", "duplicate_field",
             "huge_field", "very_huge_field", "huge_header", "no_name", "no_disposition", "many_parts",
             "latin1_field", "empty", "file_as_text", "junk_before", "boundary_mismatch")


@st.composite
def requests(draw, zip_bytes: bytes):
    mutation = draw(st.sampled_from(MUTATIONS))
    fields = [("pdf_format", b"none"), ("llm_tier", draw(st.sampled_from([b"cheap", b"", b"premium", b"\xff\xfe"])))]
    parts = [part(n, v) for n, v in fields] + [part("scan_zip", zip_bytes, "s.zip")]
    if mutation == "duplicate_file":
        parts.append(part("scan_zip", zip_bytes, "again.zip"))
    elif mutation == "duplicate_field":
        parts.insert(0, part("pdf_format", b"pdf"))
    elif mutation == "huge_field":
        parts.insert(0, part("webhook_url", b"https://example.org/" + b"a" * draw(st.integers(8_200, 200_000))))
    elif mutation == "very_huge_field":
        parts.insert(0, part("preset", b"x" * 1_300_000))
    elif mutation == "huge_header":
        parts.insert(0, f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Pad: {'p' * 20_000}"
                        f"\r\n\r\nv\r\n".encode())
    elif mutation == "no_name":
        parts.insert(0, f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nv\r\n".encode())
    elif mutation == "no_disposition":
        parts.insert(0, f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nv\r\n".encode())
    elif mutation == "many_parts":
        parts = [part(f"f{i}", b"v") for i in range(draw(st.integers(33, 200)))] + parts
    elif mutation == "latin1_field":
        parts.insert(0, part("preset", "généré".encode("latin-1")))
    elif mutation == "file_as_text":
        parts[-1] = part("scan_zip", zip_bytes)
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    if mutation == "truncate":
        body = body[:draw(st.integers(0, len(body) - 1))]
    elif mutation == "flip":
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
    elif mutation == "insert":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=64)) + body[at:]
    elif mutation == "no_closing":
        body = body[:-len(f"--{BOUNDARY}--\r\n")]
    elif mutation == "lf_only":
        body = body.replace(b"\r\n", b"\n")
    elif mutation == "empty":
        body = b""
    elif mutation == "junk_before":
        body = draw(st.binary(min_size=1, max_size=200)) + body
    content_type = draw(st.sampled_from([f"multipart/form-data; boundary={BOUNDARY}",
                                         f'multipart/form-data; boundary="{BOUNDARY}"']))
    if mutation == "boundary_mismatch":
        content_type = draw(st.sampled_from(["multipart/form-data; boundary=other", "multipart/form-data",
                                             "multipart/form-data; boundary=", "application/x-www-form-urlencoded",
                                             "text/plain", "", "multipart/form-data; boundary=" + "b" * 300]))
    chunked = draw(st.booleans())
    if chunked and body:  # no Content-Length: the server counts what arrives
        size = draw(st.integers(1, max(1, len(body))))
        content = iter([body[i:i + size] for i in range(0, len(body), size)])
    else:
        content = body
    return mutation, content_type, content


def _fuzz(strategy, examples: int, check) -> None:
    @given(case=strategy)
    @hypothesis_settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
                         database=None)
    def run(case) -> None:
        check(*case)

    run()


@pytest.fixture
def api_and_zip(settings, page_files):
    api = Api(settings)
    api.client = TestClient(api.app, raise_server_exceptions=False)  # a crash must show as a 500, not raise here
    return api, make_zip(page_files)


def test_malformed_uploads_never_get_a_5xx_and_store_nothing(api_and_zip):
    api, zip_bytes = api_and_zip
    seen = set()

    def check(mutation, content_type, content) -> None:
        seen.add(mutation)
        before = api.job_rows()
        headers = {**api.headers(), **({"Content-Type": content_type} if content_type else {})}
        r = api.client.post("/v1/process-scan", content=content, headers=headers)
        assert r.status_code < 500, (mutation, r.status_code, r.text[:300])
        if r.status_code == 202:
            assert api.job_rows() == before + 1
        else:
            assert r.status_code in (400, 413), (mutation, r.status_code, r.text[:300])
            assert r.json()["error"] in ("invalid_input", "upload_too_large", "no_images", "bad_image",
                                         "unsafe_archive", "archive_too_large"), (mutation, r.text[:300])
            assert api.job_rows() == before
        assert list(api.settings.tmp_dir.iterdir()) == []  # nothing spooled stays, accepted or not

    _fuzz(requests(zip_bytes), 120, check)
    assert len(seen) >= 10  # the strategy reached most mutations


def test_without_a_key_every_upload_is_401_and_nothing_is_read(api_and_zip):
    api, zip_bytes = api_and_zip

    def check(mutation, content_type, content) -> None:
        r = api.client.post("/v1/process-scan", content=content,
                            headers={"Content-Type": content_type} if content_type else {})
        if r.status_code == 413:  # a declared Content-Length over the limit is refused before the key is read
            assert not isinstance(content, bytes) or len(content) > api.settings.max_upload_bytes
        else:
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", (mutation, r.status_code)
        assert list(api.settings.tmp_dir.iterdir()) == [] and api.job_rows() == 0

    _fuzz(requests(zip_bytes), 40, check)


def test_a_chunked_form_over_the_limit_on_another_route_is_413(api_and_zip):
    """Every route's body is capped as it arrives, not only the upload's (here the portal's sign-in form)."""
    api, _ = api_and_zip
    r = api.client.post("/portal/login", content=iter([b"email=" + b"a" * 600_000] + [b"a" * 600_000] * 3),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large", r.text[:300]
