#!/usr/bin/env bash
# The same fine-tune on a lent CUDA GPU (the `device` tool), within 12 minutes, writing the checkpoint
# where the CPU run (run.sh) resumes from it. Nothing depends on it; see README.md here.
#
#   training/ppocrv6-finetune/gpu_run.sh prepare     # here, once: wheels + the compiled data, into .gpu/
#   device run: bash training/ppocrv6-finetune/gpu_run.sh train   (carry: .gpu, timeout_s 780)
#   then copy the returned checkpoint.pt into training/ppocrv6-finetune/checkpoints/ and run run.sh
#
# .gpu/ holds kraken's wheel and the few of its dependencies the GPU image lacks (Python 3.12
# wheels), and the run's compiled training and validation lines re-encoded small enough to travel
# (the page images inside the arrow files are 400 MB; the line crops alone at 64 px are ~30 MB).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=training/ppocrv6-finetune
GPU=.gpu

prepare() {
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  mkdir -p $GPU/whl $GPU/lines
  # kraken and what it imports on the training path that the GPU image does not have
  for pkg in kraken==7.1.1 htrmopo==0.6.0 iso639-lang jiwer rapidfuzz pydantic pydantic-core annotated-types \
             typing-inspection platformdirs; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d $GPU/whl "$pkg" || python3 -m pip download -q --no-deps -d $GPU/whl "$pkg"
  done
  # the run's compiled lines as PNG + .gt.txt (height 64), compiled again there with ketos
  .venv/bin/python - <<'EOF'
import io, pyarrow as pa
from pathlib import Path
from PIL import Image
out = Path(".gpu/lines")
for split in ("train", "validation"):
    for kind in ("pages", "lines"):
        src = Path(f"training/ppocrv6-finetune/data/{split}_{kind}.arrow")
        if not src.is_file():
            continue
        with pa.memory_map(str(src), "rb") as f:
            table = pa.ipc.open_file(f).read_all()
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(table.column("lines").to_pylist()):
            im = Image.open(io.BytesIO(row["im"])).convert("RGB")
            im = im.resize((max(1, round(im.width * 64 / im.height)), 64), Image.LANCZOS)
            stem = folder / f"{kind}_{i:05d}"
            im.save(stem.with_suffix(".png"), optimize=True)
            stem.with_name(stem.name + ".gt.txt").write_text(row["text"], encoding="utf-8")
EOF
  cp "$(.venv/bin/python -c 'from biqe_lab.model_registry import resolve_model; print(resolve_model("ppocrv6-small"))')" $GPU/base.safetensors
  [ -f $RUN/checkpoints/checkpoint.pt ] && cp $RUN/checkpoints/checkpoint.pt $GPU/ || true
  du -sh $GPU
}

train() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $GPU/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
  mkdir -p /tmp/data /tmp/run
  for split in train validation; do
    ls $GPU/lines/$split/*.png > /tmp/data/$split.txt
    python3 -c "import sys; from kraken.ketos import cli; sys.exit(cli())" compile -o /tmp/data/$split.arrow -F /tmp/data/$split.txt -f path --force-type baseline
  done
  [ -f $GPU/checkpoint.pt ] && cp $GPU/checkpoint.pt /tmp/run/
  python3 - <<'EOF'
from pathlib import Path
from biqe_lab.finetune import FineTuneRun, fine_tune
run = FineTuneRun(base_model=Path(".gpu/base.safetensors"), train=[Path("/tmp/data/train.arrow")],
                  validation=[Path("/tmp/data/validation.arrow")], output=Path("/tmp/run"), epochs=10,
                  batch_size=16, device="cuda:0", workers=12, validate_every=200, max_seconds=9 * 60)
print(fine_tune(run))
EOF
  cp /tmp/run/checkpoint.pt /tmp/run/history.jsonl /tmp/run/best.safetensors "$OUT"/
}

"${1:?prepare or train}"
