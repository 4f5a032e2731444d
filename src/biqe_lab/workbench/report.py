"""Run outputs and reports: provenance, metrics.json, CSV tables (every review line), exports, self-contained HTML pages."""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

from ..evaluation import recognition_model, report, training_note
from ..model import Document
from ..pipeline import configure, export
from ..version import __version__
from .review import review_frame, review_items
from .runs import Run
from .tables import line_table, page_table

PROJECT = Path(__file__).resolve().parents[3]

if TYPE_CHECKING:
    import nbformat

METRICS_FILE = "metrics.json"
REVIEW_FILE = "review.csv"  # every line: raw, corrected, standing text, reference, CERs, status
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1500px;margin:24px auto;padding:0 20px;
color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0.2em} h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #ddd}
h3,h4{margin:1.2em 0 0.4em}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{border:1px solid #d6d6d6;padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:#f2f4f7} tbody tr:nth-child(even){background:#fafafa}
td{font-variant-numeric:tabular-nums}
img{max-width:100%} pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
pre.error{background:#fde8e8;color:#900}
details{margin:4px 0 2px;color:#666;font-size:12px} details pre{color:#222}
.meta{color:#555;font-size:13px}
.output{margin:4px 0 18px} .anchor-link{display:none}
table.params th{background:#f2f4f7;font-weight:600} .default{color:#888}
"""


@lru_cache(maxsize=16)
def _sha256(path: str, _mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Union[str, Path]) -> str:
    path = Path(path)
    return _sha256(str(path.resolve()), path.stat().st_mtime)


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The project's git commit (with ``+dirty`` when tracked files changed), None outside a checkout."""
    try:
        head = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(PROJECT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(document: Document, config=None) -> dict:
    """What produced a document: the resolved engine and model (with sha256 and card), biqe_lab version and
    commit, the correction preset (and whether auto chose it), lexicon and prompt versions, every step's
    settings and time (from the document's own processing records)."""
    engine, model = recognition_model(document)
    out: dict = {"biqe_lab": __version__, "git_commit": git_commit(), "engine": engine,
                 "model": model.name if model else None, "model_path": str(model) if model else None,
                 "model_sha256": file_sha256(model) if model and model.is_file() else None}
    if config is not None:
        out["requested"] = {"engine": getattr(config, "engine", None), "model": getattr(config, "model", None),
                            "layout": getattr(config, "layout", None), "preset": getattr(config, "preset", None),
                            "correction": getattr(config, "correction", None)}
    if model is not None:
        from ..model_registry import read_card

        card = read_card(model)
        if card:
            out["model_card"] = {"name": card.get("name"), "best_epoch": (card.get("training") or {}).get("best_epoch"),
                                 "held_out_cer": {k: v.get("cer") for k, v in (card.get("evaluation") or {}).items()
                                                  if isinstance(v, dict)}}
    correction = next((r for r in document.processing if r.step == "correction"), None)
    if correction is not None:
        s = correction.settings
        choice = s.get("preset_choice") if isinstance(s.get("preset_choice"), dict) else None
        final = (choice or {}).get("final") or {}
        per_page = (choice or {}).get("pages") or {}
        chosen_by = "the run's setting"
        if choice:
            chosen_by = (f"auto: {final.get('preset')} ({final.get('reason')}, on {final.get('words')} words)"
                         + (f"; per page: " + ", ".join(f"{k} {v}" for k, v in per_page.items()) if per_page else ""))
        out["correction"] = {"tier": s.get("tier"), "ran_as": s.get("ran_as"),
                             "preset": final.get("preset") or s.get("preset"), "preset_setting": s.get("preset"),
                             "preset_chosen_by": chosen_by,
                             "prompt_version": s.get("prompt_version"), "lexicons": s.get("lexicons"),
                             "lexicon_words": s.get("lexicon_words"), "confusions": s.get("confusions"),
                             "scoring": s.get("scoring")}
    out["steps"] = [{"step": r.step, "engine": r.engine, "version": r.version, "settings": r.settings,
                     "started_at": r.started_at, "seconds": r.seconds} for r in document.processing]
    return out


def provenance_html(prov: dict, run: Optional[Run] = None) -> str:
    """The provenance as two tables (what read the pages; every step with its settings and time) plus notes."""
    def cell(value) -> str:
        if value is None or value == "":
            return "<span class='default'>–</span>"
        return html.escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))

    rows = [("engine (resolved)", prov.get("engine")), ("model", prov.get("model")),
            ("model sha256", prov.get("model_sha256")), ("model file", prov.get("model_path")),
            ("biqe_lab", prov.get("biqe_lab")), ("git commit", prov.get("git_commit") or "not a git checkout")]
    card = prov.get("model_card")
    if card:
        rows.append(("model card", f"{card.get('name')}, best epoch {card.get('best_epoch')}, held-out CER "
                     + ", ".join(f"{k} {v:.1%}" for k, v in (card.get("held_out_cer") or {}).items() if v is not None)))
    if prov.get("requested"):
        rows.append(("requested", prov["requested"]))
    corr = prov.get("correction")
    if corr:
        rows += [("correction tier", corr.get("tier") + (f" (ran as {corr['ran_as']})" if corr.get("ran_as") else "")),
                 ("preset", f"{corr.get('preset')} (chosen by {corr.get('preset_chosen_by')})"),
                 ("prompt version", corr.get("prompt_version")), ("lexicons", corr.get("lexicons")),
                 ("lexicon words", corr.get("lexicon_words")), ("confusion table", corr.get("confusions"))]
    else:
        rows.append(("correction", "none ran"))
    head = "".join(f"<tr><th>{html.escape(k)}</th><td>{cell(v)}</td></tr>" for k, v in rows)
    steps = "".join(f"<tr><td>{html.escape(s['step'])}</td><td>{cell(s['engine'])}</td><td>{cell(s['version'])}</td>"
                    f"<td>{s['seconds']:.2f} s</td><td>{cell(s['started_at'])}</td><td><code>{cell(s['settings'])}</code>"
                    f"</td></tr>" for s in prov.get("steps", []))
    notes = []
    if run is not None:
        if run.htr is None:
            notes.append("no ground truth: the pages are shown and reviewed, not scored")
        else:
            if run.htr.coverage_note():
                notes.append(run.htr.coverage_note())
            if training_note(run.training):
                notes.append(training_note(run.training))
    note_html = "".join(f"<p class='meta'><b>Note:</b> {html.escape(n)}</p>" for n in notes)
    return (f"<table class='params'><tbody>{head}</tbody></table>"
            "<table><thead><tr><th>step</th><th>engine</th><th>version</th><th>time</th><th>started</th>"
            f"<th>settings</th></tr></thead><tbody>{steps}</tbody></table>{note_html}")


def run_metrics(run: Run, parameters: Optional[dict] = None) -> dict:
    """What a batch run reports: its settings, provenance and ``evaluation`` (the JSON of ``biqe-lab evaluate``)."""
    out = {"dataset": run.dataset, "tier": run.tier, "settings": run.settings, "parameters": parameters or {},
           "seconds": run.seconds,
           "provenance": provenance(run.document, None if run.settings.get("document") else run.config),
           "training_split": run.training}
    out["evaluation"] = report(run.htr, run.corrected) if run.htr is not None else None
    return out


def write_run_outputs(run: Run, output_dir: Union[str, Path], parameters: Optional[dict] = None,
                      formats: Sequence[str] = ("pagexml", "alto"), pdf: str = "none") -> dict:
    """Write ``metrics.json`` (with provenance), ``pages.csv``, ``lines.csv``, ``review.csv`` and ``exports/``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = run_metrics(run, parameters)
    written = export(run.document, out / "exports", configure(formats=tuple(formats), pdf=pdf))
    metrics["exports"] = {fmt: [str(Path(p).relative_to(out)) for p in paths] for fmt, paths in written.items()}
    page_table(run).to_csv(out / "pages.csv", index=False)
    line_table(run).to_csv(out / "lines.csv", index=False)
    review_frame(review_items(run.document)).to_csv(out / REVIEW_FILE, index=False)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    return metrics


def _markdown(text: str) -> str:
    from nbconvert.filters import markdown2html

    return markdown2html(text)


def _output_html(output) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre>{html.escape(output.get('text', ''))}</pre>"
    if kind == "error":
        from nbconvert.filters import strip_ansi

        trace = strip_ansi("\n".join(output.get("traceback", [])))
        return f"<pre class='error'>{html.escape(trace)}</pre>"
    data = output.get("data", {})
    if "image/png" in data:
        png = data["image/png"]
        png = png if isinstance(png, str) else base64.b64encode(png).decode("ascii")
        return f"<img src='data:image/png;base64,{png.strip()}'/>"
    if "text/html" in data:
        return data["text/html"]
    if "text/markdown" in data:
        return _markdown(data["text/markdown"])
    if "text/plain" in data:
        return f"<pre>{html.escape(data['text/plain'])}</pre>"
    return ""


def notebook_html(notebook: Union[str, Path, "nbformat.NotebookNode"], title: str = "",
                  header_html: str = "", show_code: bool = True) -> str:
    """A self-contained HTML page of an executed notebook: markdown, tables and images embedded.

    Widgets appear as the static rendering they carry; the code of each cell is folded away in a
    <details> element. Nothing is loaded from the network (no CDN, no scripts).
    """
    import nbformat  # here: it loads jsonschema, seconds of import time that notebooks do not need

    nb = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, (str, Path)) else notebook
    parts = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            parts.append(_markdown(cell.source))
        elif cell.cell_type == "code" and "parameters" not in tags:
            outs = "".join(_output_html(o) for o in cell.get("outputs", []))
            if not outs:  # a cell that showed nothing (e.g. a branch not taken) is left out
                continue
            if show_code and cell.source.strip():
                parts.append(f"<details><summary>code</summary><pre>{html.escape(cell.source)}</pre></details>")
            parts.append(f"<div class='output'>{outs}</div>")
    title = title or "biqe_lab report"
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            + header_html + "".join(parts) + "</body></html>")


def parameters_html(parameters: dict, defaults: Optional[dict] = None) -> str:
    """The run's parameters as a table: the values given for the run, then the notebook's defaults (greyed)."""
    rows = [f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(v if isinstance(v, str) else repr(v))}</td></tr>"
            for k, v in parameters.items()]
    rows += [f"<tr class='default'><th>{html.escape(str(k))}</th><td>{html.escape(str(v))} (default)</td></tr>"
             for k, v in (defaults or {}).items() if k not in parameters]
    return f"<table class='params'><tbody>{''.join(rows)}</tbody></table>"


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
