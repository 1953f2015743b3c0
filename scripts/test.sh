#!/usr/bin/env bash
# The whole test suite: Rust format, lints and tests, then Python lints, types and tests.
# Run from the repository root with the project's virtualenv active or at .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=${PYTHON:-python3}; fi
export PYO3_PYTHON="$($PY -c 'import sys; print(sys.executable)')"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# Owlette deploys to Windows machines: its cfg-gated branches (file identity, reparse points) must
# compile. Checked wherever rustup can install the target; without rustup, or offline, skipped.
WIN=x86_64-pc-windows-gnu
if command -v rustup >/dev/null 2>&1 && rustup target add "$WIN" >/dev/null 2>&1; then
    cargo check --target "$WIN"
    cargo clippy --target "$WIN" --all-targets -- -D warnings
else
    echo "test.sh: the $WIN target cannot be installed here: Windows cross-check skipped" >&2
fi
cargo test --quiet
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy
"$PY" -m pytest -q -p anyio "$@"
