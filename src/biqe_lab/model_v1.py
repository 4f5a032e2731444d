"""Reading schema version 1 documents: ``upgrade_v1`` turns a version 1 document.json into version 2 (pure data).

Version 1 kept structure in strings; version 2 types it:

- ``Page.warnings`` (strings) and ``ProcessingRecord.settings["warnings"]`` -> ``ProcessingRecord.warnings``
  (``StepWarning(message, page)``). A page's warning did not say which step gave it: a
  correction warning goes to the correction record, any other (``page failed: ...``) to the
  record of the last page step that ran (layout, recognition or correction).
- ``Page.error`` ``"code: message"`` -> ``PageError(code, message, step=None)`` (the step was not recorded).
- ``Line.tags["correction"]`` (JSON text) -> ``Line.correction`` (``CorrectionRecord``).
- ``Page.ground_truth`` (the path of the paired file) -> ``GroundTruth(source, regions, lines)``: the
  page's lines when they carry the reference (a ground-truth layout), else ``lines`` None, read
  from ``source`` when an evaluation needs it (as version 1 did).

Nothing here imports the model (only the step names of ``defaults``): the upgrade works on the parsed JSON, then the model validates it.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from .defaults import PIPELINE_STEPS

PAGE_STEPS = tuple(step for step in PIPELINE_STEPS if step != "export")  # the steps that run page by page
CORRECTION_TAG = "correction"  # the Line.tags key version 1 kept the correction record in (JSON)


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """The version 2 form of a version 1 document (``data`` itself is left unchanged)."""
    data = copy.deepcopy(data)
    records = data.get("processing") or []
    for record in records:
        settings = record.setdefault("settings", {})
        record["warnings"] = [{"message": str(w), "page": None} for w in settings.pop("warnings", None) or []]
    by_step = {record.get("step"): record for record in records}
    last_page_step = next((r for r in reversed(records) if r.get("step") in PAGE_STEPS), None)
    for page in data.get("pages") or []:
        name = page.get("name")
        for warning in page.pop("warnings", None) or []:
            target = by_step.get("correction") if str(warning).startswith("correction") else None
            target = target or last_page_step
            if target is not None:
                target["warnings"].append({"message": str(warning), "page": name})
        page["error"] = _page_error(page.get("error"))
        page["ground_truth"] = _ground_truth(page)
        for line in page.get("lines") or []:
            line["correction"] = _correction(line)
    data["schema_version"] = 2
    return data


def _page_error(error: Any) -> Any:
    if not isinstance(error, str):
        return error
    code, sep, message = error.partition(": ")
    if not sep or " " in code:  # not "code: message": the whole text is the message
        code, message = "error", error
    return {"code": code, "message": message, "step": None}


def _ground_truth(page: dict[str, Any]) -> Any:
    source = page.get("ground_truth")
    if not isinstance(source, str):
        return source
    lines = page.get("lines") or []
    if any(line.get("reference") is not None for line in lines):
        kept = [{k: v for k, v in line.items() if k not in ("variants", CORRECTION_TAG)} | {"variants": []}
                for line in lines]
        for line in kept:
            line["tags"] = {k: v for k, v in (line.get("tags") or {}).items() if k != CORRECTION_TAG}
        return {"source": source, "regions": copy.deepcopy(page.get("regions") or []), "lines": kept}
    return {"source": source, "regions": [], "lines": None}


def _correction(line: dict[str, Any]) -> Any:
    tags = line.get("tags") or {}
    text = tags.pop(CORRECTION_TAG, None)
    if text is None:
        return None
    record = json.loads(text)
    record["diff"] = [list(part) for part in record.get("diff", [])]
    return record
