"""Training with kraken's machinery: stable splits, a short real run, a model that loads, fine-tuning."""
import json

import pytest

from biqe_lab import ingest
from biqe_lab.ingest import open_image
from biqe_lab.recognition import KrakenRecognizer
from biqe_lab.synthetic import write_synthetic_pages
from biqe_lab.training import (SplitPlan, TrainingRun, best_checkpoint, compile_datasets, export_weights,
                               plan_split, run_training, split_of)


def test_split_is_stable_and_holds_out_whole_writers(datasets):
    assert split_of("peraire/B.1.intro-eurasie_0005.jpg") == split_of("peraire/B.1.intro-eurasie_0005.jpg")
    plan = plan_split([datasets / "peraire" / "train", datasets / "lines" / "copiste_dun_jour"])
    train_pages, test_pages = set(plan.pages["train"]), set(plan.pages["test"])
    assert train_pages and test_pages and not train_pages & test_pages
    assert 0.05 < len(test_pages) / (len(train_pages) + len(test_pages)) < 0.2
    writers = {}
    manifest = (datasets / "lines" / "copiste_dun_jour" / "manifest.tsv").read_text().splitlines()[1:]
    for row in manifest:
        cols = row.split("\t")
        writers[cols[0]] = cols[2]
    by_split = {s: {writers[p.rsplit("/", 1)[1]] for p in plan.lines[s]} for s in plan.lines}
    assert by_split["test"] and not by_split["test"] & by_split["train"]
    assert sorted(plan.held_out["copiste_dun_jour"]) == sorted(by_split["test"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two synthetic pages, trained for one epoch (train = validation: a plumbing run, not a model)."""
    work = tmp_path_factory.mktemp("train")
    pages = write_synthetic_pages(work / "pages", 2, seed=7)
    xmls = [str(p.with_suffix(".xml")) for p in pages]
    plan = SplitPlan()
    plan.pages["train"], plan.pages["validation"] = xmls, xmls
    datasets = compile_datasets(plan, work / "data", log=lambda m: None)
    run = TrainingRun(datasets=datasets, output=work / "ckpt", epochs=1, min_epochs=0, batch_size=4,
                      spec="[1,32,0,1 Cr3,3,16 Mp2,2 S1(1x0)1,3 Lbx32 Do]")
    logged = []
    assert run_training(run, log=logged.append) == 0
    return work, run, logged, pages


@pytest.mark.slow
def test_training_runs_end_to_end_and_the_model_recognizes(tiny_run):
    work, run, logged, pages = tiny_run
    assert any(m.startswith("epoch 1: validation CER") for m in logged)
    best = best_checkpoint(run.output)
    assert best is not None
    model = export_weights(best[0], work / "tiny.safetensors")
    sessions = [json.loads(l) for l in (run.output / "sessions.jsonl").read_text().splitlines()]
    assert sessions[-1]["exit_code"] == 0
    doc = ingest(pages[:1])
    page = doc.pages[0]
    KrakenRecognizer(model).recognize(page, open_image(page.image))
    assert all(line.variant("htr") is not None for line in page.lines)


@pytest.mark.slow
def test_fine_tuning_extends_the_charset(tiny_run, tmp_path):
    work, run, _, _ = tiny_run
    base = export_weights(best_checkpoint(run.output)[0], tmp_path / "base.safetensors")
    new_pages = write_synthetic_pages(tmp_path / "new", 1, seed=8)
    xml = new_pages[0].with_suffix(".xml")
    xml.write_text(xml.read_text(encoding="utf-8").replace("<Unicode>", "<Unicode>§", 1), encoding="utf-8")
    plan = SplitPlan()
    plan.pages["train"], plan.pages["validation"] = [str(xml)], [str(xml)]
    datasets = compile_datasets(plan, tmp_path / "data", log=lambda m: None)
    tuned = TrainingRun(datasets=datasets, output=tmp_path / "ckpt", epochs=1, min_epochs=0, batch_size=4,
                        base_model=base)
    assert run_training(tuned, log=lambda m: None) == 0
    model = export_weights(best_checkpoint(tuned.output)[0], tmp_path / "tuned.safetensors")
    charset = set(KrakenRecognizer(model)._task.net.codec.c2l)
    assert "§" in charset and "§" not in set(KrakenRecognizer(base)._task.net.codec.c2l)
