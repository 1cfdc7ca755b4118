# Benchmarks 1 and 3: the cost of the R bridge, batches and progress.
#
# One warm R process, one embedded Python, one thread count.  Side by side
# and interleaved (so load from other processes hits every variant alike),
# repeated; the minimum of the repeats is reported.
#   plain   : the plain diffusers call a Python user would write (pipeline
#             loaded with from_pretrained() from the same directory,
#             CPU generator, pipe(...).images[0].save(path))
#   api     : rdiffusers_py.api.generate() called from Python (the package's
#             Python side: PNG encode, pixel hash, metadata dict)
#   R       : sd_generate(progress = FALSE) (adds R validation, the
#             reticulate call, R metadata and png_write_meta())
#   R + bar : sd_generate(progress = "bar") (an R callback every step)
# and, for batches: sd_generate(n = 4) vs 4 calls of sd_generate(n = 1).
#
# Usage: Rscript bench/bridge.R <model_dir> <size> <steps> <reps> <out.json>
# Run from the repository root by bench/run.sh, which installs the working
# tree into bench/work/lib and puts that library first on R_LIBS.

args <- commandArgs(trailingOnly = TRUE)
model_dir <- normalizePath(args[[1]])
size <- as.integer(args[[2]])
steps <- as.integer(args[[3]])
reps <- as.integer(args[[4]])
out_json <- args[[5]]

suppressMessages(library(rdiffusers))
# The bridge is compared on the same arithmetic: plain diffusers float32.
options(rdiffusers.optimize = "none", rdiffusers.progress = FALSE)
out_dir <- file.path(tempdir(), "bench-out")
dir.create(out_dir, showWarnings = FALSE)

prompt <- "a lighthouse on a cliff at dawn, oil painting"
negative <- "blurry"
guidance <- 7.5

# Warm-up: loads the package's pipeline (and Python) once.
img0 <- sd_generate(prompt, negative, model = model_dir, width = size, height = size,
                    steps = steps, guidance_scale = guidance, seed = 1, output_dir = out_dir)

reticulate::py_run_string(sprintf('
import time, torch, diffusers
from rdiffusers_py import api as _rd_api
_pipe = diffusers.StableDiffusionPipeline.from_pretrained(%s, safety_checker=None,
            requires_safety_checker=False)
_pipe.set_progress_bar_config(disable=True)
def bench_plain(seed, path):
    t = time.perf_counter()
    img = _pipe(prompt=%s, negative_prompt=%s, num_inference_steps=%d,
                guidance_scale=%s, width=%d, height=%d,
                generator=torch.Generator("cpu").manual_seed(int(seed))).images[0]
    img.save(path)
    return time.perf_counter() - t
def bench_api(seed, path, cache_dir):
    t = time.perf_counter()
    _rd_api.generate(%s, [%s], [%s], [str(seed)], [path], %d, %d, %d, %s,
                     cache_dir=cache_dir, optimize="none")
    return time.perf_counter() - t
def bench_threads():
    return torch.get_num_threads()
', deparse(model_dir), deparse(prompt), deparse(negative), steps, guidance, size, size,
deparse(model_dir), deparse(prompt), deparse(negative), size, size, steps, guidance))
py <- reticulate::py

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}
gen <- function(seed, n = 1, progress = FALSE) {
  sd_generate(prompt, negative, model = model_dir, width = size, height = size,
              steps = steps, guidance_scale = guidance, seed = seed, n = n,
              output_dir = out_dir, progress = progress)
}

# Same seed on every side: the R image must equal the plain one pixel for pixel.
plain_png <- file.path(out_dir, "plain.png")
invisible(py$bench_plain(7L, plain_png))
same_pixels <- identical(
  rdiffusers:::py_call("pixel_hash", plain_png),
  gen(7)$meta$pixel_sha256
)

t <- list(plain = numeric(), api = numeric(), r = numeric(), r_bar = numeric(),
          n4_one_call = numeric(), n4_four_calls = numeric())
for (i in seq_len(reps)) {
  t$plain <- c(t$plain, py$bench_plain(10L + i, plain_png))
  t$api <- c(t$api, py$bench_api(as.character(10L + i), file.path(out_dir, "api.png"), sd_cache_dir()))
  t$r <- c(t$r, elapsed(gen(10 + i)))
  t$r_bar <- c(t$r_bar, elapsed(
    utils::capture.output(gen(10 + i, progress = "bar"), type = "message")))
  message(sprintf("rep %d: %s", i, paste(names(t)[1:4], round(sapply(t[1:4], utils::tail, 1), 3),
                                         collapse = " ")))
}
# n = 4 in one call vs 4 calls, in alternating order (load drifts over the
# run would otherwise favour whichever always comes first).
n4 <- function() t$n4_one_call <<- c(t$n4_one_call, elapsed(gen(100, n = 4)))
four <- function() t$n4_four_calls <<- c(t$n4_four_calls, elapsed(for (s in 100:103) gen(s)))
for (i in seq_len(max(2, reps %/% 2))) {
  if (i %% 2 == 1) { n4(); four() } else { four(); n4() }
}
# The same with the tiny model, where a per-call cost would be large next to
# the work: what 4 calls cost beyond one call with n = 4 is the bridge's part.
tiny <- list(one_call = numeric(), four_calls = numeric())
gen_tiny <- function(seed, n = 1) {
  sd_generate(prompt, model = "tiny", width = 64, height = 64, steps = 2, seed = seed, n = n,
              output_dir = out_dir, progress = FALSE)
}
invisible(gen_tiny(1))  # load
for (i in seq_len(15)) {
  one <- function() tiny$one_call <<- c(tiny$one_call, elapsed(gen_tiny(100, n = 4)))
  fours <- function() tiny$four_calls <<- c(tiny$four_calls, elapsed(for (s in 100:103) gen_tiny(s)))
  if (i %% 2 == 1) { one(); fours() } else { fours(); one() }
}

# Where the difference goes: each extra the package does, timed on its own
# (many repeats of a fast operation, so the figures are stable).
# R's clock ticks in milliseconds: R-side parts are the mean of k calls timed together.
micro <- function(f, k = 20) elapsed(for (i in seq_len(k)) f()) / k
img <- gen(11)
reticulate::py_run_string('
import time
from PIL import Image
from rdiffusers_py import images as _rd_images
def bench_micro(path, k=20):
    im = Image.open(path).convert("RGB"); im.load()
    def best(f):
        b = 1e9
        for _ in range(k):
            t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
        return b
    return {"png_encode": best(lambda: _rd_images.save_png(im, path + ".tmp.png")),
            "plain_save": best(lambda: im.save(path + ".tmp2.png")),
            "pixel_sha256": best(lambda: _rd_images.pixel_hash(im))}
')
pym <- py$bench_micro(img$path)
# The R function Python calls after every step (for Ctrl+C and the progress
# bar), built as sd_generate(progress = FALSE) builds it, called from Python.
reticulate::py_run_string('
def bench_callback(cb, total, k=200):
    b = 1e9
    for _ in range(k):
        t = time.perf_counter(); cb(1, 1, total); b = min(b, time.perf_counter() - t)
    return b
')
r_step_callback <- rdiffusers:::with_interrupts(
  rdiffusers:::progress_start(1, steps, show = FALSE),
  function(callback) py$bench_callback(callback, steps)
)
tmp_png <- file.path(out_dir, "micro.png")
invisible(file.copy(img$path, tmp_png, overwrite = TRUE))
r_meta_write <- micro(function() {
  png_write_meta(tmp_png, file.path(out_dir, "micro-out.png"), meta = img$meta, overwrite = TRUE)
})
r_validate <- micro(function() {
  # The pure-R checks sd_generate() runs before the Python call.
  rdiffusers:::check_prompt(prompt)
  rdiffusers:::check_seed(11, 1)
  rdiffusers:::check_size(size)
}, k = 2000)

mins <- lapply(t, min)
res <- list(
  model = model_dir, size = size, steps = steps, reps = reps,
  torch_threads = py$bench_threads(),
  optimize = img$meta$optimize,
  r_and_plain_identical_pixels = same_pixels,
  seconds_min = mins,
  seconds_median = lapply(t, stats::median),
  seconds_all = t,
  ratio_r_over_plain = mins$r / mins$plain,
  ratio_r_over_plain_median = stats::median(t$r) / stats::median(t$plain),
  ratio_api_over_plain = mins$api / mins$plain,
  ratio_r_bar_over_r = mins$r_bar / mins$r,
  ratio_n4_four_calls_over_one_call = mins$n4_four_calls / mins$n4_one_call,
  ratio_n4_four_calls_over_one_call_median =
    stats::median(t$n4_four_calls) / stats::median(t$n4_one_call),
  n4_tiny_seconds_min = lapply(tiny, min),
  overhead_parts_seconds = list(
    python_png_encode = pym$png_encode, python_plain_pil_save = pym$plain_save,
    python_pixel_sha256 = pym$pixel_sha256,
    r_png_write_meta = r_meta_write, r_argument_checks = r_validate,
    r_step_callback = r_step_callback, steps_per_image = steps
  )
)
jsonlite::write_json(res, out_json, auto_unbox = TRUE, pretty = TRUE, digits = NA)
message("bridge: R / plain = ", round(res$ratio_r_over_plain, 4))
