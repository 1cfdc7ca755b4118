#' Generate images from a text prompt
#'
#' Generates one or more images with a Stable Diffusion pipeline and writes
#' each to a PNG file in `output_dir` that carries every setting needed to
#' regenerate it exactly (see [png_read_meta()]). Arguments are checked in R
#' before anything runs; a bad value is an error that names the argument, of
#' class `rdiffusers_error_input` (a model that cannot be found:
#' `rdiffusers_error_model`; see [rdiffusers-package] for all classes).
#'
#' @section Seeds:
#' A seed makes an image reproducible. `seed = NULL` draws one from R's random
#' number generator, so [set.seed()] before the call reproduces it. Seeds can
#' be whole numbers from 0 to 2^53 or, for the full 64-bit range that other
#' tools use, decimal strings from `"0"` to `"18446744073709551615"`. Give one
#' seed, or one per prompt. Image `i` (from 0) of a prompt gets `seed + i`,
#' so `n = 4, seed = 10` makes seeds 10, 11, 12, 13 and any of them can be
#' regenerated on its own.
#'
#' @section Interrupting:
#' Ctrl+C (Esc in RStudio) stops generation within a step and signals a
#' condition of class `rdiffusers_interrupt`; the loaded model stays ready.
#' Each image is saved as soon as it is finished, so the images of a batch
#' made before the stop (or before an error) are kept: a message lists them,
#' and the condition's `images` element holds them as an `sd_images`.
#' With reticulate older than 1.37, whose interrupt handling can leave Python
#' in a broken state (rstudio/reticulate#1601), R can on rare occasions
#' crash or hang after Ctrl+C: update reticulate where you can.
#'
#' @param prompt Character vector: what to draw, one image set per element
#'   (each at most 1 MiB as stored in the image's metadata, where a
#'   character outside ASCII takes 6 bytes; the model reads only its start,
#'   77 tokens for CLIP).
#' @param negative_prompt What to avoid: `NULL`, one string, or one per
#'   prompt.
#' @param model A preset name (see [sd_presets()]), a Hugging Face hub id, or
#'   a local model directory or file. See [sd_load_model()].
#' @param width,height Image size in pixels, multiples of 8 (of 16 for SD3
#'   models whose transformer works on 2 x 2 patches, as SD3 Medium's does).
#'   `NULL` uses the model's default.
#' @param steps Number of denoising steps (a whole number >= 1). `NULL` uses
#'   the model's default.
#' @param guidance_scale Classifier-free guidance: how strongly the image
#'   follows the prompt. `NULL` uses the model's default.
#' @param seed `NULL`, a whole number in 0..2^53, or a decimal string in
#'   0..18446744073709551615; length 1 or one per prompt. See "Seeds".
#' @param n Number of images per prompt (at most 10000 images per call).
#' @param scheduler `NULL` (a preset's own, see [sd_presets()], or else the
#'   model's) or a name from
#'   [sd_schedulers()], e.g. `"Euler a"` or `"DPMSolverMultistepScheduler"`.
#' @param output_dir Directory for the PNG files; created if needed. Defaults
#'   to [sd_output_dir()].
#' @param ... Options for loading the model, passed to [sd_load_model()]:
#'   `revision`, `device`, `dtype`, `variant`, `config`, `optimize`,
#'   `trusted`; and
#'   `clip_skip` (number of final text-encoder layers to skip, diffusers
#'   convention: A1111's "Clip skip 2" is `clip_skip = 1`). Other names are an
#'   error.
#' @param progress Show progress: `NULL` (the option `rdiffusers.progress`,
#'   default: in interactive sessions, except while knitting),
#'   `TRUE`/`FALSE`, or `"bar"`, `"summary"`, `"none"`.
#' @returns An `sd_image` when one image was made, otherwise an `sd_images`
#'   (prompts in order, `n` images each). See [new_sd_image()].
#' @family generation
#' @export
#' @examplesIf rdiffusers::sd_available()
#' img <- sd_generate("a watercolor fox", model = "tiny", steps = 2,
#'                    width = 64, height = 64, seed = 42)
#' img
#' img$meta$seed
sd_generate <- function(prompt, negative_prompt = NULL, model = sd_default_model(),
                        width = NULL, height = NULL, steps = NULL,
                        guidance_scale = NULL, seed = NULL, n = 1,
                        scheduler = NULL, output_dir = sd_output_dir(), ...,
                        progress = NULL) {
  load_args <- check_dots_load(...)
  sd_run(
    task = "txt2img", prompt = prompt, negative_prompt = negative_prompt,
    model = model, width = width, height = height, steps = steps,
    guidance_scale = guidance_scale, seed = seed, n = n, scheduler = scheduler,
    output_dir = output_dir, load_args = load_args, progress = progress
  )
}

#' Where generated images are written
#'
#' The option `rdiffusers.output_dir`, or a folder in the session's temporary
#' directory (deleted when R exits). Set the option, or pass `output_dir =`,
#' to keep images.
#'
#' @returns A directory path (it may not exist yet).
#' @family generation
#' @export
#' @examples
#' sd_output_dir()
sd_output_dir <- function() {
  getOption("rdiffusers.output_dir", file.path(tempdir(), "rdiffusers"))
}

# The shared engine of sd_generate(), sd_img2img() and sd_inpaint().
#
#   task            "txt2img", "img2img" or "inpaint"
#   prompt, negative_prompt, model, width, height, steps, guidance_scale,
#   seed, n, scheduler, output_dir, progress
#                   as the user gave them to sd_generate(): validated here
#   load_args       named list from check_dots_load(): load options plus
#                   clip_skip, already validated
#   image, mask     NULL, or paths of PNG files (the caller has validated and
#                   normalized them; Python reads them)
#   strength        NULL, or a validated double in (0, 1]
#   keep_unmasked   inpaint: paste the unmasked pixels back unchanged
#   scheduler_config NULL, or a scheduler's full config as recorded in
#                   metadata: rebuilds `scheduler` exactly (sd_reproduce())
#   extra_meta      NULL, or a named list added to every image's metadata
#   also_steps      NULL, or other step counts checked against the model's
#                   scheduler before anything runs (a sweep's first cell)
#   call            the user's call, for error messages
#
# Returns an sd_image or sd_images; every file is final (metadata written).
sd_run <- function(task, prompt, negative_prompt = NULL, model = sd_default_model(),
                   width = NULL, height = NULL, steps = NULL,
                   guidance_scale = NULL, seed = NULL, n = 1, scheduler = NULL,
                   output_dir = sd_output_dir(), load_args = list(),
                   progress = NULL, image = NULL, mask = NULL, strength = NULL,
                   keep_unmasked = TRUE, scheduler_config = NULL,
                   extra_meta = NULL, also_steps = NULL, call = caller_env()) {
  # Pure-R checks first, so bad input fails fast without starting Python.
  check_prompt(prompt, call = call)
  negative_prompt <- check_negative_prompt(negative_prompt, length(prompt), call = call)
  width <- check_size(width, call = call)
  height <- check_size(height, call = call)
  steps <- check_whole(steps, min = 1, allow_null = TRUE, arg = "steps", call = call)
  guidance_scale <- check_number(guidance_scale, allow_null = TRUE,
                                 arg = "guidance_scale", call = call)
  # A cap far above any real batch: n = 1e9 would build a billion seeds
  # (minutes, gigabytes) before the first image.
  n <- check_whole(n, min = 1, max = max_images, arg = "n", call = call)
  if (length(prompt) * n > max_images) {
    abort_input("{length(prompt)} prompt{?s} x {.arg n} = {n} make {length(prompt) * n} images; at most {max_images} per call.",
                call = call)
  }
  seeds <- check_seed(seed, length(prompt), call = call)
  check_string(output_dir, arg = "output_dir", call = call)
  check_string(scheduler, allow_null = TRUE, arg = "scheduler", call = call)
  check_string(model, arg = "model", call = call)
  load_args <- with_optimize(load_args, call = call)
  # Checks that need Python's lists of models and schedulers.
  check_model(model, call = call)
  # A recorded config (sd_reproduce()) names the class a model shipped,
  # which may have no A1111 name (SASolverScheduler): Python rebuilds it.
  if (is.null(scheduler_config)) check_scheduler(scheduler, call = call)

  preset <- presets_list(call = call)[[model]]
  if (task == "txt2img") {
    # img2img and inpainting take the input image's size (see sd_img2img()).
    width <- width %||% as_int_or_null(preset$width)
    height <- height %||% as_int_or_null(preset$height)
  }
  if (is.null(steps) && !is.null(preset$steps)) {
    steps <- as.integer(preset$steps)
    # A preset's steps with img2img's strength must still run one step
    # (turbo presets: 1 step, strength 0.5); diffusers runs steps x strength.
    # floor() as Python's int(): ceiling(1 / strength) * strength can round
    # to just below 1 (strength = 1/161).
    if (!is.null(strength) && floor(steps * strength) < 1) {
      needed <- ceiling(1 / strength)
      while (floor(needed * strength) < 1) needed <- needed + 1
      if (needed > 1000) {
        abort_input(
          c("{.arg strength} = {format(strength)} would need {format(needed, big.mark = ',', scientific = FALSE)} steps to run one.",
            i = "Raise {.arg strength} or give {.arg steps}."),
          call = call
        )
      }
      steps <- as.integer(needed)
    }
  }
  guidance_scale <- guidance_scale %||% (if (!is.null(preset$guidance_scale)) as.double(preset$guidance_scale))
  if (is.null(scheduler_config)) {
    scheduler <- scheduler %||% preset$scheduler
  }

  # One entry per image: prompts in order, n images each, seed + i.
  n_prompts <- length(prompt)
  idx <- rep(seq_len(n_prompts), each = n)
  offsets <- rep(seq_len(n) - 1L, times = n_prompts)
  batch_seeds <- mapply(seed_add, seeds[idx], offsets, USE.NAMES = FALSE)
  for (s in batch_seeds) {
    if (is.na(s)) {
      abort_input(
        c("{.arg seed} + {n - 1} overflows the largest seed, {.val 18446744073709551615}.",
          i = "Use a smaller seed."),
        call = call
      )
    }
  }
  batch_prompt <- prompt[idx]
  batch_negative <- if (is.null(negative_prompt)) NULL else negative_prompt[idx]
  n_images <- length(idx)

  created_dir <- first_missing_dir(output_dir)
  check_output_dir(output_dir, call = call)
  output_dir <- normalizePath(output_dir, winslash = "/", mustWork = TRUE)
  tmp_paths <- file.path(
    output_dir,
    sprintf(".rdiffusers-%s-%d.png", random_id(), seq_len(n_images))
  )
  on.exit(remove_path(tmp_paths), add = TRUE)

  p <- progress_start(n_images, steps %||% NA_integer_, show = progress, call = call)
  finished <- FALSE   # an error or interrupt after the last step is a failure too
  on.exit(progress_done(p, ok = finished), add = TRUE)
  # A call refused by Python leaves no empty directory behind (after the
  # temporary files are gone: on.exit() runs in order).
  on.exit(if (!finished && !is.null(created_dir) &&
                length(dir(created_dir, all.files = TRUE, recursive = TRUE)) == 0) {
    remove_path(created_dir, recursive = TRUE)
  }, add = TRUE)

  clip_skip <- load_args$clip_skip
  load_args$clip_skip <- NULL
  args <- c(
    list(
      model = model,
      # unname(): a named list would reach Python as a dict of its names.
      prompt = as.list(unname(batch_prompt)),
      negative_prompt = if (is.null(batch_negative)) NULL else as.list(unname(batch_negative)),
      seeds = as.list(batch_seeds),
      out_paths = as.list(tmp_paths),
      width = width, height = height, steps = steps,
      guidance_scale = guidance_scale,
      task = task, scheduler = scheduler, scheduler_config = scheduler_config,
      clip_skip = clip_skip,
      strength = strength, image = image, mask = mask,
      keep_unmasked = keep_unmasked,
      cache_dir = sd_cache_dir(),
      also_steps = if (!is.null(also_steps)) as.list(as.double(also_steps))
    ),
    load_args
  )
  # Each image is made final (metadata written, moved to its name) as soon
  # as Python has written its pixels, so an error or Ctrl+C later in the
  # batch keeps the images already finished.
  saved <- list()
  warns <- character()
  keep_image <- function(res) {
    meta <- res$meta
    warns <<- union(warns, c(unlist(res$warnings), unlist(meta$warnings)))
    meta$warnings <- NULL
    now <- Sys.time()
    meta <- c(r_side_meta(meta, format(now, "%Y-%m-%dT%H:%M:%SZ", tz = "UTC")), extra_meta)
    final <- write_final_png(res$path, output_dir,
                             paste0("sd-", format(now, "%Y%m%d-%H%M%S"), "-",
                                    format_seed(meta$seed)), meta)
    saved[[length(saved) + 1L]] <<- new_sd_image(final, meta)
  }
  on.exit(if (!finished) note_saved(saved, n_images), add = TRUE)
  # Also after a stop: they may concern the images kept.
  on.exit(for (w in warns) {
    cli::cli_warn("{w}", class = "rdiffusers_warning", call = call)
  }, add = TRUE)
  tryCatch(
    with_interrupts(p, function(callback) {
      rlang::exec(py_call, "generate", !!!args, callback = callback, call = call)
    }, on_image = keep_image),
    # The condition carries the images saved before it.
    rdiffusers_interrupt = function(cnd) {
      signal_sd_interrupt(cnd$parent, images = new_sd_images(saved))
    }
  )
  finished <- TRUE
  if (length(saved) == 1) saved[[1]] else new_sd_images(saved)
}

# After an error or interrupt part-way through a batch: which images were
# finished and saved.
# Up to 10 paths are listed; a longer list ends with how many more there are.
note_saved <- function(saved, n_images, what = "image") {
  if (!length(saved)) {
    return(invisible())
  }
  paths <- vapply(saved, function(img) img$path, "")
  shown <- utils::head(paths, 10)
  more <- length(paths) - length(shown)
  cli::cli_inform(c(
    "!" = "{length(saved)} of {n_images} {what}{cli::qty(n_images)}{?s} finished before the stop and {cli::qty(length(saved))}{?is/are} saved:",
    stats::setNames(shown, rep(" ", length(shown))),
    if (more > 0) c(" " = "... and {more} more in {.file {dirname(paths[[1]])}}.")
  ), class = "rdiffusers_message")
}

# The outermost directory of `path` that does not exist yet (what
# dir.create(recursive = TRUE) would create), or NULL.
first_missing_dir <- function(path) {
  path <- normalizePath(path, winslash = "/", mustWork = FALSE)
  top <- NULL
  while (!dir.exists(path) && !file.exists(path) && dirname(path) != path) {
    top <- path
    path <- dirname(path)
  }
  top
}

# Creates `output_dir` if needed and checks that files can be written there,
# before any work: an image is never generated only to be lost.
check_output_dir <- function(output_dir, arg = "output_dir", call = caller_env()) {
  if (file.exists(output_dir) && !dir.exists(output_dir)) {
    sd_abort("{.arg {arg}} {.file {output_dir}} is a file, not a directory.",
             class = "rdiffusers_error_file", call = call)
  }
  if (!dir.exists(output_dir) &&
      !dir.create(output_dir, recursive = TRUE, showWarnings = FALSE)) {
    sd_abort("Cannot create {.arg {arg}} {.file {output_dir}}.",
             class = "rdiffusers_error_file", call = call)
  }
  if (!dir_writable(output_dir)) {
    sd_abort("Cannot write files into {.arg {arg}} {.file {output_dir}}.",
             class = "rdiffusers_error_file", call = call)
  }
  invisible(output_dir)
}

# Adds the R-side entries and makes the seed a number when it fits exactly.
r_side_meta <- function(meta, created) {
  meta$versions <- c(
    as.list(meta$versions),
    list(R = as.character(getRversion()),
         rdiffusers = as.character(utils::packageVersion("rdiffusers")))
  )
  meta$created <- created
  if (is.character(meta$seed) && seed_fits_double(meta$seed)) {
    meta$seed <- as.double(meta$seed)
  }
  meta
}

# Inserts the metadata chunks into Python's pixel-only PNG, writing the final
# file "<dir>/<stem>.png" (or "-2", "-3", ...) atomically with
# png_write_meta(), then drops the temporary file. If another process takes
# the name first, the next free one is used: nothing is overwritten.
write_final_png <- function(tmp, dir, stem, meta) {
  repeat {
    final <- unique_path(dir, stem)
    done <- tryCatch(png_write_meta(tmp, final, meta = meta),
                     rdiffusers_error_exists = function(e) NULL)
    if (!is.null(done)) break
  }
  remove_path(tmp)
  final
}

# "<dir>/<stem>.png", or "<stem>-2.png", "-3", ... so nothing is overwritten.
unique_path <- function(dir, stem) {
  path <- file.path(dir, paste0(stem, ".png"))
  k <- 1L
  while (path_taken(path)) {
    k <- k + 1L
    path <- file.path(dir, paste0(stem, "-", k, ".png"))
  }
  path
}

random_id <- function() {
  # Not from R's RNG: temporary names must not disturb set.seed() streams.
  paste0(Sys.getpid(), "-", format(as.numeric(Sys.time()) * 1e6, scientific = FALSE))
}

as_int_or_null <- function(x) if (is.null(x)) NULL else as.integer(x)

# Runs `run(callback)`, a Python call that calls `callback(image_index, step,
# total)` after every step, so that Ctrl+C stops it, and
# `callback(image_index, result = result)` after every image, which is passed
# on to `on_image(result)`. One R function for both: with a second one for the
# images, test-interrupt.R's child crashed after Ctrl+C in 3 of 110 runs with
# reticulate 1.28, with one in none of 116. With reticulate before 1.36 an R
# interrupt inside a callback reaches Python as a RuntimeError, so the
# callback notes it and the error is turned back into an
# `rdiffusers_interrupt`; newer reticulate delivers a real interrupt, which
# py_call() converts.
with_interrupts <- function(p, run, on_image = NULL) {
  user_cb <- if (is.list(p) || is.environment(p)) p$callback
  interrupted <- FALSE
  # An R error in the callback (writing an image's file) reaches Python, and
  # comes back, as a RuntimeError with reticulate < 1.36: kept here, it is
  # signalled again with its own class.
  failure <- NULL
  # The R function Python calls: Ctrl+C inside it becomes an error for
  # Python (so the pipeline unwinds cleanly) and is noted here.
  callback <- function(image_index, step = NULL, total = NULL, result = NULL) {
    tryCatch(
      {
        if (!is.null(result)) {
          if (!is.null(on_image)) on_image(result)
        } else if (is.null(user_cb)) {
          Sys.sleep(0)
        } else {
          user_cb(image_index, step, total)
        }
        TRUE
      },
      interrupt = function(cnd) {
        interrupted <<- TRUE
        if (is.environment(p)) p$interrupted <- TRUE
        stop("Interrupted by the user.", call. = FALSE)
      },
      error = function(cnd) {
        failure <<- cnd
        stop(cnd)
      }
    )
  }
  tryCatch(
    run(callback),
    error = function(e) {
      if (interrupted || interrupt_in_callback_entry(e)) signal_sd_interrupt(e)
      if (!is.null(failure)) stop(failure)
      stop(e)
    }
  )
}

# Ctrl-C that arrives while Python is computing stays pending in R until
# Python next calls back into R. With older reticulate (seen with 1.28) it is
# then raised inside reticulate's own entry code, before our callback's
# tryCatch() runs: Rcpp's namespace lookup fails, and Python receives the
# error "No such namespace: reticulate" -- which can only mean an interrupt,
# since reticulate is necessarily loaded while it runs Python.
interrupt_in_callback_entry <- function(e) {
  any(grepl("No such namespace: reticulate", c(conditionMessage(e),
                                                 if (!is.null(e$parent)) conditionMessage(e$parent)),
            fixed = TRUE))
}


# Checks ------------------------------------------------------------------

dots_allowed <- c("revision", "device", "dtype", "variant", "config", "optimize", "trusted",
                  "clip_skip")

# The `...` of sd_generate() & co: load options and clip_skip. Anything else
# is an error (a misspelt argument must not be silently ignored).
check_dots_load <- function(..., .allowed = dots_allowed, call = caller_env()) {
  # `.allowed`, dotted so it cannot capture a user argument in `...`.
  dots <- list(...)
  check_dots_names(dots, .allowed, call = call)
  dots <- check_load_args(dots, call = call)
  if (!is.null(dots$clip_skip)) {
    dots$clip_skip <- check_whole(dots$clip_skip, min = 0, arg = "clip_skip", call = call)
  }
  dots
}

# Every element of `dots` (a list) named, once, with a name in `allowed`.
check_dots_names <- function(dots, allowed, call = caller_env()) {
  nms <- names(dots) %||% rep("", length(dots))
  if (any(!nzchar(nms))) {
    abort_input(
      c("Arguments in {.arg ...} must be named.",
        i = "Allowed: {.arg {allowed}}."),
      call = call
    )
  }
  bad <- setdiff(nms, allowed)
  if (length(bad)) {
    abort_input(
      c("Unknown argument{?s} {.arg {bad}}.",
        i = "{.arg ...} takes only {.arg {allowed}}."),
      call = call
    )
  }
  if (anyDuplicated(nms)) {
    abort_input("Argument {.arg {nms[duplicated(nms)]}} is given twice.", call = call)
  }
  invisible(dots)
}

check_prompt <- function(prompt, arg = caller_arg(prompt), call = caller_env()) {
  if (!is.character(prompt) || length(prompt) == 0) {
    abort_input(
      "{.arg {arg}} must be a character vector with at least one prompt, not {.obj_type_friendly {prompt}}.",
      call = call
    )
  }
  if (anyNA(prompt)) {
    abort_input("{.arg {arg}} must not contain {.val {NA}} (element{?s} {which(is.na(prompt))}).",
                call = call)
  }
  if (any(!nzchar(trimws(prompt)))) {
    abort_input(
      c("{.arg {arg}} must not be empty (element{?s} {which(!nzchar(trimws(prompt)))}).",
        i = "Describe the image, e.g. {.code prompt = \"a lighthouse at dusk\"}."),
      call = call
    )
  }
  check_utf8(prompt, arg = arg, call = call)
  check_prompt_size(prompt, arg = arg, call = call)
  invisible(prompt)
}

# Every image stores its prompts in its metadata, which png_read_meta()
# reads up to 8 MiB: a longer prompt would fail only after generating. A
# prompt is stored as JSON with everything outside ASCII escaped (6 bytes a
# character), up to 4 times (prompt, negative prompt, SD3's copies of both),
# so the limit is on that size. The text encoders read just the start of a
# prompt (77 tokens for CLIP).
prompt_max_bytes <- 1024^2

check_prompt_size <- function(x, arg = caller_arg(x), call = caller_env()) {
  big <- which(vapply(enc2utf8(x), json_size, numeric(1), USE.NAMES = FALSE) >
                 prompt_max_bytes)
  if (length(big) > 0) {
    abort_input(
      c("{.arg {arg}} is too long (element{?s} {big}): a prompt can take at most 1 MiB in the image's metadata, where a character outside ASCII takes 6 bytes.",
        i = "The model reads only the start of a prompt: 77 tokens for CLIP's text encoders."),
      call = call
    )
  }
  invisible(x)
}

# Text whose bytes are not valid in its encoding (a Latin-1 file read
# without its encoding in a UTF-8 session) would reach the model, and the
# metadata, garbled ("caf<e9>"). Strings marked latin1 convert exactly.
# TRUE where a string's text can be had as UTF-8: valid UTF-8 in a UTF-8
# session, or convertible from its declared (or the native) encoding.
# enc2utf8() would turn invalid bytes into "<e9>" escapes, silently.
utf8_convertible <- function(x) {
  utf8_session <- isTRUE(l10n_info()[["UTF-8"]])
  vapply(x, function(s) {
    enc <- Encoding(s)
    if (enc == "unknown" && utf8_session) return(validUTF8(s))
    enc != "bytes" && !is.na(iconv(s, from = if (enc == "unknown") "" else enc, to = "UTF-8"))
  }, logical(1), USE.NAMES = FALSE)
}

check_utf8 <- function(x, arg = caller_arg(x), call = caller_env()) {
  bad <- which(!utf8_convertible(x))
  if (length(bad) > 0) {
    abort_input(
      c("{.arg {arg}} is not valid UTF-8 text (element{?s} {bad}).",
        i = "Read text files with their encoding, e.g. {.code readLines(f, encoding = \"latin1\")}, or convert with {.fn iconv}."),
      call = call
    )
  }
  invisible(x)
}

check_negative_prompt <- function(x, n_prompts, arg = "negative_prompt",
                                  call = caller_env()) {
  if (is.null(x)) {
    return(NULL)
  }
  if (!is.character(x) || !length(x) %in% c(1L, n_prompts) || anyNA(x)) {
    abort_input(
      "{.arg {arg}} must be {.code NULL}, one string, or one string per prompt ({n_prompts}), without {.val {NA}}.",
      call = call
    )
  }
  check_utf8(x, arg = arg, call = call)
  check_prompt_size(x, arg = arg, call = call)
  rep_len(x, n_prompts)
}

# A whole number >= min, returned as integer. Range is checked before
# as.integer() so large values are an error, not NA.
check_whole <- function(x, min = 0, max = .Machine$integer.max, allow_null = FALSE,
                        arg = caller_arg(x), call = caller_env()) {
  if (allow_null && is.null(x)) {
    return(NULL)
  }
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || !is.finite(x) ||
      x != trunc(x)) {
    abort_input(
      c("{.arg {arg}} must be a whole number, not {.obj_type_friendly {x}}{if (is.numeric(x) && length(x) == 1) paste0(' (', format(x), ')') else ''}.",
        i = if (allow_null) "Use {.code NULL} for the model's default."),
      call = call
    )
  }
  if (x < min || x > max) {
    abort_input("{.arg {arg}} must be between {min} and {max}, not {format(x)}.",
                call = call)
  }
  as.integer(x)
}

check_number <- function(x, allow_null = FALSE, arg = caller_arg(x),
                         call = caller_env()) {
  if (allow_null && is.null(x)) {
    return(NULL)
  }
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || !is.finite(x)) {
    # A single number is shown as it is (Inf, NaN): "not a number" would
    # call Inf what it is not.
    if (is.numeric(x) && length(x) == 1) {
      shown <- format(x)
      bad <- "{.arg {arg}} must be a finite number, not {shown}."
    } else {
      bad <- "{.arg {arg}} must be a finite number, not {.obj_type_friendly {x}}."
    }
    abort_input(
      c(bad,
        i = if (allow_null) "Use {.code NULL} for the model's default."),
      call = call
    )
  }
  as.double(x)
}

# Images per call (prompts x n).
max_images <- 10000L

check_size <- function(x, arg = caller_arg(x), call = caller_env()) {
  force(arg)  # before `x` is reassigned: caller_arg() reads it lazily
  x <- check_whole(x, min = 8, max = 16384, allow_null = TRUE, arg = arg, call = call)
  if (!is.null(x) && x %% 8L != 0L) {
    lower <- x %/% 8L * 8L
    abort_input(
      c("{.arg {arg}} must be a multiple of 8, not {x}.",
        i = "Try {lower} or {lower + 8L}."),
      call = call
    )
  }
  x
}

check_scheduler <- function(scheduler, arg = "scheduler", call = caller_env()) {
  if (is.null(scheduler)) {
    return(invisible(NULL))
  }
  known <- names(schedulers_list(call = call))
  if (!scheduler %in% known) {
    close <- known[agrepl(scheduler, known, max.distance = 0.2, ignore.case = TRUE)]
    abort_input(
      c("Unknown {.arg {arg}} {.val {scheduler}}.",
        i = if (length(close)) "Did you mean {.or {.val {head(close, 3)}}}?",
        i = "See {.run rdiffusers::sd_schedulers()} for the names accepted."),
      call = call
    )
  }
  invisible(scheduler)
}

# Seeds ------------------------------------------------------------------

seed_max <- "18446744073709551615"

# bit64's integer64 (what data.table::fread() reads big integers as) holds
# int64 bits in a double vector: read as a number it is garbage (42 is
# 2.1e-322), so seeds of that class are taken as their decimal digits.
int64_as_digits <- function(x) {
  if (inherits(x, "integer64")) as.character(x) else x
}

# Returns one decimal-string seed per prompt.
check_seed <- function(seed, n_prompts, arg = "seed", call = caller_env()) {
  seed <- int64_as_digits(seed)
  if (is.null(seed)) {
    # From R's RNG, so set.seed() reproduces it; below 2^53 so it is exact.
    hi <- sample.int(2^21, n_prompts, replace = TRUE) - 1
    lo <- sample.int(2^32, n_prompts, replace = TRUE) - 1
    return(sprintf("%.0f", hi * 2^32 + lo))
  }
  if (!length(seed) %in% c(1L, n_prompts)) {
    abort_input(
      "{.arg {arg}} must have length 1 or one per prompt ({n_prompts}), not {length(seed)}.",
      call = call
    )
  }
  if (is.numeric(seed)) {
    ok <- !is.na(seed) & is.finite(seed) & seed == trunc(seed) & seed >= 0 & seed <= 2^53
    if (!all(ok)) {
      bad <- seed[!ok][1]
      hint <- if (isTRUE(bad < 0)) {
        "For a random seed use {.code seed = NULL} (AUTOMATIC1111's -1)."
      } else {
        "For seeds above 2^53 use a decimal string such as {.val 18446744073709551615}."
      }
      abort_input(
        c("{.arg {arg}} must be a whole number from 0 to 2^53, not {format(bad, digits = 17)}.",
          i = hint),
        call = call
      )
    }
    # abs(): -0 passes the checks, and sprintf() would write "-0".
    return(rep_len(sprintf("%.0f", abs(seed)), n_prompts))
  }
  if (is.character(seed)) {
    ok <- !is.na(seed) & grepl("^[0-9]+$", seed)
    ok[ok] <- seed_le(seed[ok], seed_max)
    if (!all(ok)) {
      abort_input(
        c("{.arg {arg}} must be a decimal string from {.val 0} to {.val {seed_max}}, not {.val {seed[!ok][1]}}.",
          i = "Digits only: no sign, spaces, decimal point or exponent."),
        call = call
      )
    }
    return(rep_len(seed_normalize(seed), n_prompts))
  }
  abort_input(
    "{.arg {arg}} must be {.code NULL}, a whole number or a decimal string, not {.obj_type_friendly {seed}}.",
    call = call
  )
}

seed_normalize <- function(x) {
  x <- sub("^0+", "", x)
  ifelse(nzchar(x), x, "0")
}

# a <= b for non-negative decimal strings.
seed_le <- function(a, b) {
  a <- seed_normalize(a)
  b <- seed_normalize(b)
  ifelse(nchar(a) != nchar(b), nchar(a) < nchar(b), a <= b)
}

seed_fits_double <- function(x) {
  grepl("^[0-9]+$", x) && seed_le(x, "9007199254740992")
}

# Decimal string + small non-negative integer; NA when past 2^64 - 1.
seed_add <- function(seed, k) {
  digits <- rev(as.integer(strsplit(seed_normalize(seed), "")[[1]]))
  carry <- as.integer(k)
  i <- 1L
  while (carry > 0L) {
    if (i > length(digits)) digits <- c(digits, 0L)
    total <- digits[i] + carry
    digits[i] <- total %% 10L
    carry <- total %/% 10L
    i <- i + 1L
  }
  out <- paste(rev(digits), collapse = "")
  if (!seed_le(out, seed_max)) NA_character_ else out
}
