"""Run outputs and reports: metrics.json, CSV tables, exports, and a self-contained HTML page of an executed notebook."""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

from ..evaluation import report
from ..export import export_document
from .runs import Run
from .tables import line_table, page_table

if TYPE_CHECKING:
    import nbformat

METRICS_FILE = "metrics.json"
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


def run_metrics(run: Run, parameters: Optional[dict] = None) -> dict:
    """What a batch run reports: its settings and ``evaluation``, the JSON of ``biqe-lab evaluate``."""
    return {"dataset": run.dataset, "tier": run.tier, "settings": run.settings, "parameters": parameters or {},
            "seconds": run.seconds, "evaluation": report(run.htr, run.corrected)}


def write_run_outputs(run: Run, output_dir: Union[str, Path], parameters: Optional[dict] = None,
                      formats: Sequence[str] = ("pagexml", "alto"), pdf: str = "none") -> dict:
    """Write ``metrics.json``, ``pages.csv``, ``lines.csv`` and the exports (``exports/``) of a run."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = run_metrics(run, parameters)
    written = export_document(run.document, out / "exports", formats, pdf=pdf)
    metrics["exports"] = {fmt: [str(Path(p).relative_to(out)) for p in paths] for fmt, paths in written.items()}
    page_table(run).to_csv(out / "pages.csv", index=False)
    line_table(run).to_csv(out / "lines.csv", index=False)
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
