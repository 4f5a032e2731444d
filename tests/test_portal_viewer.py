"""The portal's read-only result viewer in real headless Chromium: a done job's page image with its line outlines,
each line's text beside its outline (hover lights both), search hits marked in the list and on the page, and
another account refused."""
from __future__ import annotations

import re
import zipfile

import pytest

from biqe_lab import Document

from test_portal import ALICE, BOB, STEPS, browser, letter_zip, portal, shots, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def _done_job(page, portal) -> str:  # noqa: F811 - the fixture's name
    page.set_input_files("#scan_zip", files=[{"name": "letter.zip", "mimeType": "application/zip",
                                              "buffer": page.context._biqe_zip}])
    page.select_option("#pipeline_steps", STEPS)
    page.click("button:has-text('Upload and start')")
    page.wait_for_url(re.compile(r".*notice=job-submitted"))
    job_id = page.url.split("#job-")[1]
    page.wait_for_selector(f"#job-{job_id}[data-state=done]", timeout=120_000)
    return job_id


def test_the_viewer_shows_each_lines_text_beside_its_outline(portal, browser, shots, letter_zip):  # noqa: F811
    context, page = sign_in(browser, portal, ALICE, "/portal/jobs", viewport={"width": 1400, "height": 1000})
    context._biqe_zip = letter_zip
    job_id = _done_job(page, portal)
    with zipfile.ZipFile(portal.settings.jobs_dir / job_id / "result.zip") as result:
        document = Document.model_validate_json(result.read("document.json"))
    lines = document.pages[0].lines
    assert len(lines) >= 3

    page.locator(f"#job-{job_id} a:has-text('View')").click()
    page.wait_for_url(re.compile(rf".*/portal/jobs/{job_id}/view"))
    assert page.locator("#page-svg polygon.outline").count() == len(lines)
    assert page.locator("#lines li[data-line]").count() == len(lines)
    for number in (1, len(lines)):
        item = page.locator(f"#line-{number}")
        assert lines[number - 1].text.strip() in item.inner_text()  # the line's own text, in reading order
        outline = page.locator(f"#page-svg polygon[data-line='{number}']")
        box, text_box = outline.bounding_box(), item.bounding_box()
        assert box["width"] > 20 and box["x"] + box["width"] <= text_box["x"]  # beside the outline, not on it
        item.hover()
        assert "active" in (outline.get_attribute("class") or "")
    image = context.request.get(portal.url(f"/portal/jobs/{job_id}/pages/1/image"))
    assert image.status == 200 and image.headers["content-type"] == "image/jpeg" and len(image.body()) > 5000
    assert page.evaluate("document.querySelector('#page-svg image').getBBox().width") > 100
    page.screenshot(path=shots / "08-viewer.png", full_page=True)

    # search: a word of one line; its hits are marked in the list and outlined on the page
    word = next(w for l in lines for w in re.findall(r"[A-Za-z]{4,}", l.text))
    matching = [n for n, l in enumerate(lines, start=1) if word.lower() in l.text.lower()]
    page.fill("#q", word)
    page.click("form.viewer-search button:has-text('Search')")
    page.wait_for_selector("#hit-count")
    assert int(page.locator("#hit-count").inner_text()) == len(matching)
    for number in matching:
        assert "hit" in page.locator(f"#line-{number}").get_attribute("class")
        assert "hit" in page.locator(f"#page-svg polygon[data-line='{number}']").get_attribute("class")
        assert word.lower() in page.locator(f"#line-{number} mark").first.inner_text().lower()
    page.screenshot(path=shots / "09-viewer-search.png", full_page=True)
    page.fill("#q", "(")
    page.check("input[name=regex]")
    page.click("form.viewer-search button:has-text('Search')")
    assert "not valid" in page.locator(".alert-error").inner_text()
    context.close()

    other, other_page = sign_in(browser, portal, BOB, "/portal/jobs")
    answer = other.request.get(portal.url(f"/portal/jobs/{job_id}/view"))
    assert answer.status == 404 and lines[0].text not in answer.text()
    assert other.request.get(portal.url(f"/portal/jobs/{job_id}/pages/1/image")).status == 404
    other.close()
