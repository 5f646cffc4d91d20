#!/usr/bin/env bash
# The project's test command (README "Tests"; .ci/run runs exactly this). From a clean clone it installs,
# checks that notebooks are clean and that the package matches them, runs the notebooks' inline tests,
# and ends with pytest so the last line is pytest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
. .venv/bin/activate
# tests/test_view.py opens the run explorer (`also view`) in headless Chromium: Debian's package, driven by Playwright
# (locked in requirements.lock; Playwright's own browser download is never used). Installed once when missing and we are
# root (apt-get update + install: ~80 s); already installed, this costs nothing. Without the binary that test is skipped.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium for the browser test (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
export PYTHONHASHSEED=0 ALSO_REQUIRE_BROWSER=1     # the browser test fails here, not skips, without chromium
echo "== notebooks are clean (nbdev-clean leaves no diff; papermill tags survive)"
nbdev-clean
git diff --exit-code -- nbs
echo "== package matches notebooks (nbdev-export leaves no diff)"
nbdev-export
git diff --exit-code -- also
test -z "$(git status --porcelain -- also)"
echo "== notebook tests (nbdev-test; nbs/experiments is papermill's, tested by pytest)"
nbdev-test --n-workers 2 --timing
echo "== pytest"
python -m pytest -q
