#!/usr/bin/env bash
# Create .venv with fourd (editable) and the pinned, tested dependencies of constraints.txt.
# GPU users who keep their own torch: pip install -e ".[cuda]" in their environment instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
