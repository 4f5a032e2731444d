#!/usr/bin/env bash
# Starts or resumes the PP-OCRv6 fine-tune (same command both times; see README.md here).
set -euo pipefail
cd "$(dirname "$0")/../.."
D=$(realpath ../shared/datasets)
# Two malloc arenas: enough for 2 threads. (MALLOC_MMAP_THRESHOLD_=131072, used before against memory
# growth, made every step 3x slower; the loop now bounds memory itself, see finetune._release_freed_memory.)
export MALLOC_ARENA_MAX=2
exec nice .venv/bin/biqe-lab train --workdir training/ppocrv6-finetune --out /tmp/biqe-htr-ppocrv6.safetensors \
  --base-model ppocrv6-small --batch-size 16 --epochs ${EPOCHS:-5} --threads ${THREADS:-2} \
  --data $D/peraire/train --data $D/stanford_memorials/data --data $D/cremma_medieval_lat/data \
  --data $D/lines/copiste_dun_jour --data $D/lines/cremma_mss19 --data $D/lines/cremma_mss20 \
  --data $D/lines/lectaurep_repertoires
