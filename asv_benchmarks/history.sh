#!/usr/bin/env bash
# `make bench-history`: asv results for the last few commits of HEAD, then the HTML report.
#
# Works offline with the existing virtualenv: instead of asv building each commit's wheel in a
# fresh environment (which needs PyPI), each commit is checked out into one git worktree, its
# native extensions are built in place by that commit's tools/dev_build.sh, and asv runs the
# benchmarks of *this* checkout with the .venv interpreter on that source tree
# (-E existing:PY, ASV_PYTHONPATH), recording the results under the commit's hash
# (--set-commit-hash). `asv publish` then writes asv_benchmarks/html (open html/index.html,
# or `asv preview`).
#
# Environment:
#   BENCH_HISTORY_COMMITS  commits to measure, newest first along first parents (default 5)
#   BENCH_HISTORY_ARGS     more `asv run` arguments, e.g. "--quick --bench bench_codec"
#   BENCH_HISTORY_DIR      worktree and cargo target directory (default asv_benchmarks/env/history)
#   PY                     the interpreter (default .venv/bin/python); it needs asv and the
#                          project's dependencies installed
# Cargo's target directory is kept between commits and runs, so only what changed is rebuilt
# (the first build of the Rust crates takes minutes). Commits already measured are skipped
# unless BENCH_HISTORY_ARGS says otherwise.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
COMMITS=${BENCH_HISTORY_COMMITS:-5}
WORK=${BENCH_HISTORY_DIR:-$PWD/env/history}
TREE=$WORK/tree
read -r -a EXTRA <<<"${BENCH_HISTORY_ARGS:-}"

"$PY" -m asv --version >/dev/null || { echo "asv not installed in $PY (pip install asv)" >&2; exit 2; }
[[ $COMMITS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_HISTORY_COMMITS must be a positive integer" >&2; exit 2; }
mkdir -p "$WORK/cargo-target"
# First run: start from a copy of this checkout's release build, so the third-party crates
# (tantivy and the rest, minutes of compiling) are not built again; cargo keys them by
# version and features, not by the workspace path, so the copies stay fresh.
if [[ ! -e $WORK/cargo-target/release && -d $ROOT/target/release ]]; then
  echo "seeding $WORK/cargo-target from $ROOT/target/release"
  cp -a --reflink=auto "$ROOT/target/release" "$WORK/cargo-target/release"
fi
# asv records results per machine; describe this one once with its defaults.
"$PY" -m asv machine --yes >/dev/null

if [[ ! -e $TREE/.git ]]; then
  git -C "$ROOT" worktree prune
  git -C "$ROOT" worktree add --detach "$TREE" HEAD >/dev/null
fi
# One worktree at one path for every commit, and one target directory: cargo then
# recompiles only the crates whose sources a checkout changed.
ln -sfn "$WORK/cargo-target" "$TREE/target"

mapfile -t SHAS < <(git -C "$ROOT" rev-list --first-parent -n "$COMMITS" HEAD | tac)
status=0
for sha in "${SHAS[@]}"; do
  short=${sha:0:8}
  echo "== $short $(git -C "$ROOT" log -1 --format=%s "$sha" | cut -c1-70)"
  git -C "$TREE" checkout -q --detach "$sha"
  if ! (cd "$TREE" && PY="$PY" tools/dev_build.sh >"$WORK/build-$short.log" 2>&1); then
    echo "   build failed, skipped (log: $WORK/build-$short.log)" >&2
    status=1
    continue
  fi
  ASV_PYTHONPATH="$TREE/python" "$PY" -m asv run -E "existing:$PY" --set-commit-hash "$sha" \
    --skip-existing-successful "${EXTRA[@]}" || status=1
done
"$PY" -m asv publish
echo "report: $PWD/html/index.html"
exit $status
