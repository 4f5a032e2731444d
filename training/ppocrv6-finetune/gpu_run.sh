#!/usr/bin/env bash
# The same fine-tune on a lent CUDA GPU (the `device` tool), sized to the time it is given, writing the
# checkpoint the CPU run (run.sh) resumes from. Nothing depends on it; gpu_run.py and README.md say more.
#
#   training/ppocrv6-finetune/gpu_run.sh prepare            # here, once: wheels, base model, small lines into .gpu/
#   (git rm --cached the three large model files for the call: the tree and .gpu must fit in 64 MiB)
#   device run: bash training/ppocrv6-finetune/gpu_run.sh train 420   (carry: .gpu, timeout_s 480)
#   here: cat checkpoint.pt.* > training/ppocrv6-finetune/checkpoints/checkpoint.pt (it returns in parts)
set -euo pipefail
cd "$(dirname "$0")/../.."
GPU=.gpu

prepare() {
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  mkdir -p $GPU/whl
  # what the training path imports that the GPU image (Python 3.12) lacks, at the versions pyproject installs here
  for pkg in kraken==7.1.1 cattrs==26.2.1 coremltools==9.0 defusedxml==0.7.1 iso639-lang==2.6.3 jiwer==4.0.0 \
             rapidfuzz==3.14.6 shapely==2.1.2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
             typing-inspection==0.4.5 htrmopo==0.6 platformdirs==4.14.9; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d $GPU/whl "$pkg"
  done
  cp src/biqe_lab/bundled/biqe-htr-default.safetensors $GPU/base.safetensors
  .venv/bin/python training/ppocrv6-finetune/gpu_run.py prepare
  du -sh $GPU
}

train() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $GPU/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
  python3 training/ppocrv6-finetune/gpu_run.py train "${1:?seconds}" 2>&1 | tee /tmp/gpu_run.log
  # $OUT returns files of at most 16 MiB: the checkpoint (net + optimizer, ~37 MB) travels in parts
  split -b 15M -d "$OUT/checkpoint.pt" "$OUT/checkpoint.pt." && rm "$OUT/checkpoint.pt"
  cp /tmp/gpu_run.log "$OUT/"
}

"${1:?prepare or train}" "${@:2}"
