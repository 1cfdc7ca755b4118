#!/usr/bin/env bash
# Sets everything up (dev/setup.sh), then runs every test: the Python helper's
# pytest suite, the R testthat suite against the installed package, and
# R CMD check --as-cran. Ends with one line "N passed, N failed, N skipped".
# With CI=true a missing Python dependency is a failure, never a skip.
set -uo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

py=$(Rscript -e 'cat(reticulate::virtualenv_python("r-rdiffusers"))')
"$py" -m pip install -q -r tests/python/requirements.txt

out=$(mktemp -d)
echo "== Python tests (pytest, $py)"
"$py" -m pytest tests/python -q -p no:cacheprovider --junitxml="$out/pytest.xml"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $rc -ne 5 ]; then
  echo "pytest could not run (exit $rc)"
fi

echo "== R tests (testthat, installed package)"
Rscript dev/run-tests.R "$out/testthat.tsv"

echo "== R CMD check --as-cran --no-manual"
bash dev/check.sh "$out/check.tsv"

Rscript dev/summarize.R "$out"
