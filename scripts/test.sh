#!/usr/bin/env bash
# The whole test suite: Rust format, lints and tests, then Python lints, types and tests.
# Run from the repository root with the project's virtualenv active or at .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=${PYTHON:-python3}; fi
export PYO3_PYTHON="$($PY -c 'import sys; print(sys.executable)')"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --quiet
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy
"$PY" -m pytest -q -p anyio "$@"
