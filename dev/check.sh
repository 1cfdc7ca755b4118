#!/usr/bin/env bash
# R CMD check --as-cran --no-manual without network. Writes one row of counts
# to $1: the check passes only with 0 errors, 0 warnings and 0 notes.
set -uo pipefail
cd "$(dirname "$0")/.."
counts=${1:-/dev/null}
work=$(mktemp -d)
R CMD build --no-manual . >"$work/build.log" 2>&1 || { cat "$work/build.log"; printf 'passed\tfailed\tskipped\n0\t1\t0\n' >"$counts"; exit 1; }
tarball=$(ls -t rdiffusers_*.tar.gz | head -n 1)
mv "$tarball" "$work/"
# No network here: skip CRAN's remote look-ups, which would only time out.
_R_CHECK_CRAN_INCOMING_=false _R_CHECK_CRAN_INCOMING_REMOTE_=false \
_R_CHECK_FUTURE_FILE_TIMESTAMPS_=false _R_CHECK_SYSTEM_CLOCK_=0 \
  R CMD check --as-cran --no-manual -o "$work" "$work/$tarball" | tee "$work/check.log"
status=$(grep -E '^Status:' "$work/check.log" | tail -n 1)
if [ "$status" = "Status: OK" ]; then
  printf 'passed\tfailed\tskipped\n1\t0\t0\n' >"$counts"
else
  cat "$work"/rdiffusers.Rcheck/00check.log 2>/dev/null | grep -A 30 -E 'WARNING|ERROR|NOTE' | head -n 80
  printf 'passed\tfailed\tskipped\n0\t1\t0\n' >"$counts"
fi
