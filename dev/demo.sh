#!/usr/bin/env bash
# Sets everything up, then generates one image with the offline tiny model and
# prints its path and the settings read back from the PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
echo "== Generating a demo image"
Rscript -e '
library(rdiffusers)
img <- sd_generate("a watercolor fox in a misty forest", seed = 42,
                   output_dir = "demo-output")
print(img)
cat("\nSettings read back from", img$path, ":\n")
str(png_read_meta(img$path)[c("prompt", "seed", "steps", "guidance_scale",
                              "width", "height", "model", "scheduler")])
'
