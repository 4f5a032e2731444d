"""`biqe-lab batch`: run a parameterized notebook with papermill (once or over a grid) into reports/<run_id>/."""
from __future__ import annotations

import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import yaml

from .errors import InputError, NotebookError

OUTPUT_PARAMETER = "output_dir"  # set by batch to the run's folder when the notebook declares it
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def notebook_parameters(notebook: Union[str, Path]) -> dict[str, dict]:
    """The parameters a notebook declares (its cell tagged ``parameters``): name -> papermill's description."""
    import papermill

    path = Path(notebook)
    if not path.is_file():
        raise InputError(f"notebook {path} does not exist")
    try:
        found = papermill.inspect_notebook(str(path))
    except Exception as exc:  # nbformat / JSON errors: the file is not a notebook  # noqa: BLE001
        raise InputError(f"{path.name} is not a readable notebook: {exc}") from exc
    if not found:
        raise InputError(f"{path.name} has no cell tagged 'parameters', so batch cannot set anything in it")
    return dict(found)


def parse_value(raw: Any, declared: str, name: str = "") -> Any:
    """A value given on the command line (text) or in a grid (YAML) in the type the parameters cell declares."""
    declared = (declared or "").lower()
    try:
        if declared == "str":
            return raw if isinstance(raw, str) else str(raw)
        if not isinstance(raw, str):
            return raw
        if declared == "int":
            return int(raw)
        if declared == "float":
            return float(raw)
        if declared == "bool":
            if raw.lower() in _TRUE | _FALSE:
                return raw.lower() in _TRUE
            raise ValueError("expected true or false")
        value = yaml.safe_load(raw)
        if declared in ("list", "dict") and not isinstance(value, list if declared == "list" else dict):
            raise ValueError(f"expected a {declared} (YAML, e.g. [a, b])")
        return value
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(f"parameter {name}: cannot read {raw!r} as {declared}: {exc}") from exc


def check_parameters(given: dict[str, Any], declared: dict[str, dict], notebook: Path) -> dict[str, Any]:
    """Refuse names the notebook does not declare; convert the values to the declared types."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise InputError(f"{notebook.name} has no parameter {', '.join(unknown)}; "
                         f"its parameters are: {', '.join(declared)}")
    if OUTPUT_PARAMETER in given and OUTPUT_PARAMETER in declared:
        raise InputError(f"batch sets {OUTPUT_PARAMETER} to the run's report folder; choose the folder with --out")
    return {k: parse_value(v, declared[k].get("inferred_type_name", ""), k) for k, v in given.items()}


def load_grid(path: Union[str, Path], declared: dict[str, dict]) -> list[dict[str, Any]]:
    """The runs of a grid file: every combination of the listed values (a scalar is a fixed value).

    ``runs: [{...}, ...]`` lists runs explicitly instead. For a parameter declared as a list,
    a list of lists is a grid and a plain list one fixed value.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read grid {path}: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"runs"}:
        data = data["runs"]
    if isinstance(data, list):
        if not data or not all(isinstance(r, dict) for r in data):
            raise InputError(f"grid {path}: 'runs' must be a non-empty list of mappings")
        return [dict(r) for r in data]
    if not isinstance(data, dict) or not data:
        raise InputError(f"grid {path} must map parameter names to values or lists of values")
    axes = []
    for name, value in data.items():
        as_list = declared.get(name, {}).get("inferred_type_name", "").lower() == "list"
        is_axis = isinstance(value, list) and (not as_list or all(isinstance(v, list) for v in value))
        if is_axis and not value:
            raise InputError(f"grid {path}: {name} lists no value")
        axes.append([(name, v) for v in value] if is_axis else [(name, value)])
    return [dict(combo) for combo in itertools.product(*axes)]


def slug(values: dict[str, Any], limit: int = 60) -> str:
    """A folder-name-safe summary of parameter values: ``peraire_train-none`` (the comparison names them)."""
    parts = [re.sub(r"[^A-Za-z0-9.+]+", "_", v if isinstance(v, str) else json.dumps(v)).strip("_")
             for v in values.values()]
    text = "-".join(p for p in parts if p)
    return text[:limit].rstrip("_-") or "run"


@dataclass
class RunResult:
    """One executed notebook: where its report is, its parameters and metrics, and whether it failed."""

    run_id: str
    folder: Path
    parameters: dict[str, Any]
    metrics: dict = field(default_factory=dict)
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _header(result: RunResult, notebook: Path, declared: dict[str, dict]) -> str:
    from .workbench.report import parameters_html

    status = "<b style='color:#060'>completed</b>" if result.ok else \
        f"<b style='color:#a00'>failed</b>: {html.escape(result.error or '')}"
    files = " · ".join(f"<a href='{name}'>{name}</a>" for name in (METRICS_FILE, "review.csv", "lines.csv", "pages.csv",
                                                                   notebook.name, "exports/")
                       if (result.folder / name.rstrip("/")).exists())
    return (f"<h1>biqe_lab report · {html.escape(result.run_id)}</h1>"
            f"<p class='meta'>notebook <code>{html.escape(notebook.name)}</code> run by <code>biqe-lab batch</code> "
            f"on {time.strftime('%Y-%m-%d %H:%M')} in {result.seconds:.0f} s: {status}. Files: {files}</p>"
            + parameters_html(result.parameters, {k: v.get("default") for k, v in declared.items()}))


def run_notebook(notebook: Path, parameters: dict[str, Any], folder: Path, run_id: str, declared: dict[str, dict],
                 cell_timeout: Optional[int] = None) -> RunResult:
    """Execute ``notebook`` with ``parameters`` into ``folder``; write the executed copy, report and metrics."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .workbench.report import notebook_html

    folder.mkdir(parents=True, exist_ok=True)
    params = dict(parameters)
    if OUTPUT_PARAMETER in declared:
        params[OUTPUT_PARAMETER] = str(folder.resolve())
    result = RunResult(run_id=run_id, folder=folder, parameters=params)
    executed = folder / notebook.name
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook), str(executed), parameters=params, progress_bar=False,
                                   log_output=False, execution_timeout=cell_timeout,
                                   request_save_on_cell_execute=False,
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as exc:
        result.error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    result.seconds = round(time.perf_counter() - t0, 1)
    metrics_path = folder / METRICS_FILE
    if metrics_path.is_file():
        result.metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    result.metrics.update({"run_id": run_id, "notebook": str(notebook), "parameters": params,
                           "status": "completed" if result.ok else "failed", "error": result.error,
                           "notebook_seconds": result.seconds})
    metrics_path.write_text(json.dumps(result.metrics, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    if executed.is_file():
        page = notebook_html(executed, title=f"biqe_lab report {run_id}", header_html=_header(result, notebook, declared))
        (folder / REPORT_FILE).write_text(page, encoding="utf-8")
    return result


def comparison_rows(results: Sequence[RunResult], varied: Sequence[str]) -> list[dict]:
    """One row per run of a grid: the varied parameters, sizes and rates (corrected ones when a tier ran)."""
    rows = []
    for r in results:
        ev = r.metrics.get("evaluation", {})
        row = {"run": r.run_id, **{k: r.parameters.get(k) for k in varied}, "status": "ok" if r.ok else "failed",
               "pages": ev.get("pages"), "lines": ev.get("lines"), "ref_chars": ev.get("ref_chars"),
               "CER": ev.get("htr", {}).get("cer"), "WER": ev.get("htr", {}).get("wer"),
               "CER corrected": ev.get("corrected", {}).get("cer"),
               "WER corrected": ev.get("corrected", {}).get("wer"), "seconds": r.seconds}
        rows.append(row)
    return rows


def write_comparison(results: Sequence[RunResult], varied: Sequence[str], folder: Path, title: str) -> Path:
    """``comparison.csv``, ``comparison.json`` and ``comparison.html`` (linking each run's report) in ``folder``."""
    import pandas as pd

    from .workbench.display import table_html
    from .workbench.report import STYLE

    rows = comparison_rows(results, varied)
    df = pd.DataFrame(rows)
    df.to_csv(folder / "comparison.csv", index=False)
    (folder / "comparison.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str),
                                            encoding="utf-8")
    body = table_html(df.drop(columns=["run"]).assign(report=[r.run_id for r in results]))
    for r in results:  # each run's report, linked
        body = body.replace(f"<td>{html.escape(r.run_id)}</td>",
                            f"<td><a href='{r.run_id}/{REPORT_FILE}'>{html.escape(r.run_id)}</a></td>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>{len(results)} runs; rates are corpus totals (errors over all reference characters, "
            f"NFC), as <code>biqe-lab evaluate</code> computes them. 'CER corrected' is after the correction tier."
            f"</p>{body}</body></html>")
    out = folder / "comparison.html"
    out.write_text(page, encoding="utf-8")
    return out


@dataclass
class BatchResult:
    """What a batch call produced: its runs and, for a grid, the comparison table."""

    runs: list[RunResult]
    folder: Path
    comparison: Optional[Path] = None
    table: str = ""


def run_batch(notebook: Union[str, Path], parameters: Sequence[tuple[str, str]] = (),
              grid: Union[str, Path, None] = None, out: Union[str, Path] = "reports", run_id: Optional[str] = None,
              cell_timeout: Optional[int] = None, log: Callable[[str], None] = lambda _m: None) -> BatchResult:
    """Run ``notebook`` once (or once per grid combination) with papermill into ``out/<run_id>/``.

    Every given name must be a parameter of the notebook. A grid writes its runs into
    ``out/<run_id>/<n>-<values>/`` and a comparison table across them into ``out/<run_id>/``.
    Raises NotebookError (after writing every report) when a run failed.
    """
    import pandas as pd

    from .workbench.display import PERCENT_COLUMNS

    notebook = Path(notebook)
    declared = notebook_parameters(notebook)
    fixed = check_parameters(dict(parameters), declared, notebook)
    run_id = run_id or f"{notebook.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=,+-]*", run_id):
        raise InputError(f"run id {run_id!r} must be a plain folder name (letters, digits, . _ - = , +)")
    root = Path(out) / run_id
    if root.exists() and any(root.iterdir()):
        raise InputError(f"{root} already exists and is not empty; choose another --run-id or --out")
    if grid is None:
        log(f"running {notebook.name} -> {root}")
        result = run_notebook(notebook, fixed, root, run_id, declared, cell_timeout)
        if not result.ok:
            raise NotebookError(f"{notebook.name} failed ({result.error}); see {root / REPORT_FILE}")
        return BatchResult(runs=[result], folder=root)
    combos = load_grid(grid, declared)
    combos = [check_parameters({**fixed, **combo}, declared, notebook) for combo in combos]
    varied = [k for k in dict.fromkeys(k for c in combos for k in c)
              if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in combos}) > 1]
    results = []
    for i, combo in enumerate(combos, start=1):
        sub_id = f"{i:02d}-{slug({k: combo[k] for k in varied if k in combo})}"
        log(f"[{i}/{len(combos)}] {notebook.name} {sub_id}")
        results.append(run_notebook(notebook, combo, root / sub_id, sub_id, declared, cell_timeout))
    comparison = write_comparison(results, varied, root, f"biqe_lab grid {run_id}")
    df = pd.DataFrame(comparison_rows(results, varied)).drop(columns=["run"])
    table = df.to_string(index=False, na_rep="-", formatters={c: (lambda v: "-" if pd.isna(v) else f"{v:.2%}")
                                                  for c in df.columns if c in PERCENT_COLUMNS})
    failed = [r for r in results if not r.ok]
    batch = BatchResult(runs=results, folder=root, comparison=comparison, table=table)
    if failed:
        raise NotebookError(f"{len(failed)} of {len(results)} grid runs failed ({', '.join(r.run_id for r in failed)});"
                            f" comparison in {comparison}\n{table}")
    return batch
