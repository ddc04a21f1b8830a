#!/usr/bin/env bash
# Fast in-place build for development: puts streamcore/_native*.so and
# streamcore/_cy_*.so next to the sources in python/, so that
# `PYTHONPATH=python .venv/bin/python -m pytest` uses them.
#   tools/dev_build.sh rust     only the PyO3 crate
#   tools/dev_build.sh cython   only the Cython modules
#   tools/dev_build.sh          both
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PY=${PY:-$PWD/.venv/bin/python}
SUFFIX=$($PY -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
what=${1:-all}
if [[ $what == all || $what == rust ]]; then
  # PyO3 finds the interpreter through PYO3_PYTHON.
  PYO3_PYTHON=$PY cargo build --release -q -p streamcore-python
  # Copy then rename: overwriting a loaded .so in place crashes processes using it.
  cp target/release/lib_native.so "python/streamcore/.tmp_native$SUFFIX"
  mv -f "python/streamcore/.tmp_native$SUFFIX" "python/streamcore/_native$SUFFIX"
fi
if [[ $what == all || $what == cython ]]; then
  for pyx in cython/_cy_*.pyx; do
    [ -e "$pyx" ] || continue
    name=$(basename "$pyx" .pyx)
    $PY -m cython -3 -q "$pyx" -o "build/cy/$name.c" 2>/dev/null || { mkdir -p build/cy; $PY -m cython -3 "$pyx" -o "build/cy/$name.c"; }
    inc=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    gcc -shared -fPIC -O3 -I"$inc" "build/cy/$name.c" -o "python/streamcore/.tmp_$name$SUFFIX"
    mv -f "python/streamcore/.tmp_$name$SUFFIX" "python/streamcore/$name$SUFFIX"
  done
fi
