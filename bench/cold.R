# Benchmarks 2 and 4 (R side): a fresh R process runs one job -- start
# Python, load the model, generate, generate again with the same model --
# and reports the time of each phase and the peak RSS of the process
# (VmHWM: R, the embedded Python, torch and the model all live in it).
#
# Usage: Rscript bench/cold.R <model_dir> <size> <steps> <out.json>
args <- commandArgs(trailingOnly = TRUE)
model_dir <- normalizePath(args[[1]])
size <- as.integer(args[[2]])
steps <- as.integer(args[[3]])
t0 <- proc.time()[["elapsed"]]
suppressMessages(library(rdiffusers))  # the working tree, installed by bench/run.sh
options(rdiffusers.optimize = "none", rdiffusers.progress = FALSE)
now <- function() proc.time()[["elapsed"]]
out_dir <- file.path(tempdir(), "bench-cold")
t_pkg <- now()
# R's own footprint before Python starts (R and the packages rdiffusers
# loads, among them reticulate, which loads Matrix): the
# fixed cost of running from R rather than Python.
rss_mib <- function(field) {
  as.numeric(gsub("[^0-9]", "", grep(paste0("^", field), readLines("/proc/self/status"), value = TRUE))) / 1024
}
r_baseline <- rss_mib("VmRSS")
invisible(rdiffusers:::py_call("versions"))  # starts Python, imports torch + diffusers
t_py <- now()
gen <- function(seed) {
  sd_generate("a lighthouse on a cliff at dawn, oil painting", "blurry", model = model_dir,
              width = size, height = size, steps = steps, guidance_scale = 7.5,
              seed = seed, output_dir = out_dir)
}
img1 <- gen(1)
t_first <- now()
img2 <- gen(2)
t_second <- now()
info <- rdiffusers:::py_call("cached_pipelines")
res <- list(
  side = "R", package_load_s = t_pkg - t0, python_start_s = t_py - t_pkg,
  first_call_s = t_first - t_py, second_call_s = t_second - t_first,
  load_seconds = info[[1]]$load_seconds,
  peak_rss_mib = rss_mib("VmHWM"),
  r_baseline_rss_mib = r_baseline,
  pixel_sha256 = img2$meta$pixel_sha256
)
jsonlite::write_json(res, args[[4]], auto_unbox = TRUE, pretty = TRUE, digits = NA)
