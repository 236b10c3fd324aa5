#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, warnings as errors, offline.
# Needs the docs extra: pip install -e ".[docs]"
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m sphinx -W --keep-going -E -a -b html -j 1 -q . _build/html "$@"
echo "docs: $(pwd)/_build/html/index.html"
