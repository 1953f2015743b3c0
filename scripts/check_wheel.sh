#!/usr/bin/env bash
# Build the release wheel and the sdist, then prove the wheel is one cp310-abi3 wheel that installs
# into a fresh virtualenv and imports its native core with no Rust toolchain on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=${PYTHON:-python3}; fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PY" -m maturin build --release --out "$out/dist" --interpreter "$PY" >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
"$PY" -m maturin sdist --out "$out/dist" >>"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
wheels=("$out"/dist/*.whl)
[ "${#wheels[@]}" -eq 1 ] || { echo "expected exactly one wheel, got: ${wheels[*]}"; exit 1; }
case "$(basename "${wheels[0]}")" in
  owlette_sdk-1.0.0rc0-cp310-abi3-*.whl) ;;
  *) echo "wheel is not a cp310-abi3 wheel: ${wheels[0]}"; exit 1 ;;
esac
ls "$out"/dist/owlette_sdk-1.0.0rc0.tar.gz >/dev/null
"$PY" -m venv "$out/venv"
"$out/venv/bin/pip" install -q "${wheels[0]}"
# A PATH with no cargo or rustc on it: only the fresh venv and the system basics.
env -i PATH="$out/venv/bin:/usr/bin:/bin" HOME="$HOME" sh -c '
  ! command -v cargo >/dev/null && ! command -v rustc >/dev/null || { echo "rust toolchain still on PATH"; exit 1; }
  cd /tmp && python -c "
import roost, roost._native as native, roost.chunker as chunker
assert chunker.backend() == \"native\", chunker.backend()
print(\"wheel ok:\", roost.__version__, \"native\", native.__version__, \"backend\", chunker.backend())
"'
echo "sdist ok: $(basename "$out"/dist/*.tar.gz)"
