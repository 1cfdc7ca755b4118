#!/usr/bin/env bash
# Sets up a fresh Debian machine for rdiffusers: R and the R packages it uses
# (from Debian), the package itself, and its managed Python environment
# (rdiffusers::sd_install()). Safe to run again: Debian packages already
# installed are skipped, and sd_install() refreshes the environment's pins.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(r-base-core r-base-dev r-cran-reticulate r-cran-cli r-cran-rlang r-cran-png
      r-cran-jsonlite r-cran-withr r-cran-testthat r-cran-knitr r-cran-rmarkdown
      r-cran-roxygen2 r-cran-magick r-cran-processx r-cran-callr r-cran-pkgload
      r-cran-bit64
      pandoc qpdf tidy python3 python3-venv python3-pip)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== Installing the rdiffusers R package"
R CMD INSTALL --no-test-load . >/dev/null

echo "== Installing the managed Python environment (rdiffusers::sd_install())"
Rscript -e 'rdiffusers::sd_install()'
