#!/usr/bin/env bash
# Starts or resumes the peraire fine-tune of biqe-htr-default (PP-OCRv6; it was bundled as biqe-htr-ppocrv6 when the run started) (same command both times; see README.md here).
set -euo pipefail
cd "$(dirname "$0")/../.."
export MALLOC_ARENA_MAX=2  # as training/ppocrv6-finetune/run.sh
echo "== $(date -u +%FT%TZ) start/resume" >> training/peraire-ppocrv6/train.log
exec nice .venv/bin/biqe-lab train --workdir training/peraire-ppocrv6 --out /tmp/biqe-htr-peraire-ppocrv6.safetensors \
  --base-model biqe-htr-default --batch-size 16 --epochs ${EPOCHS:-4} --threads ${THREADS:-2} \
  --data "$(realpath ../shared/datasets)/peraire/train" >> training/peraire-ppocrv6/train.log 2>&1
