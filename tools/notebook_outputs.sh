#!/usr/bin/env bash
# Refresh the outputs kept in the library notebooks (nbs/*.ipynb) so that they read well without a kernel: execute every
# library notebook twice (nbdev-test --save into two scratch copies of nbs/), keep an output only where both runs agree
# (deterministic: no timings, temp paths or random draws), drop stderr and oversized outputs, then nbdev-clean.
# Run it after changing a notebook's displayed results; ~3 min on 2 cores. Experiment notebooks (nbs/experiments) are
# not touched: their executed copies come from the main job (figures/executed/).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export PYTHONHASHSEED=0
trap 'rm -rf nbrunA nbrunB' EXIT
rm -rf nbrunA nbrunB && mkdir nbrunA nbrunB          # beside nbs/, so the notebooks' relative paths hold
cp nbs/*.ipynb nbrunA/ && cp nbs/*.ipynb nbrunB/
nbdev-test --n-workers 2 --save nbrunA
nbdev-test --n-workers 2 --save nbrunB
python tools/keep_outputs.py nbrunA nbrunB nbs
nbdev-clean
