#' Regenerate an image from its PNG file
#'
#' Reads the settings that rdiffusers stored in a PNG (see [png_read_meta()]),
#' runs the same generation again and checks whether the decoded pixels are
#' bit-identical to the original's. Pixels are compared as red, green, blue
#' and alpha, so a copy re-saved with an opaque alpha channel still compares
#' equal, and a partly transparent pixel differs.
#'
#' Before generating, the stack that made the image is compared with the one
#' at hand: package versions (Python, torch, diffusers, transformers, peft,
#' accelerate), device, dtype, fast-path mode, torch thread count, the model's
#' weights (hub commit or content hash, and for a single-file checkpoint the
#' files of a local `config` folder), LoRA files (by hash) and the input
#' images of image-to-image and inpainting (by pixel hash). Differences that
#' make exact reproduction impossible (changed local model files, a missing
#' or changed LoRA file, a device this machine lacks, an input image that is
#' not the one used) are
#' errors of class `rdiffusers_error_reproduce`; the others are listed in the
#' result, since the pixels may still agree.
#'
#' On a CPU, pixels are bit-identical only at the same torch thread count
#' (recorded as `torch_threads`). torch uses all cores by default; to fix the
#' count, set the environment variable `RDIFFUSERS_TORCH_THREADS` (read before
#' every call), e.g. `Sys.setenv(RDIFFUSERS_TORCH_THREADS = 4)`. float32
#' work also needs torch's own BLAS (recorded as `blas`): in R it is
#' `"host"`, R's BLAS, when torch was imported before rdiffusers.
#'
#' LoRAs recorded in the file are loaded for the call and the model's previous
#' LoRAs are restored afterwards. A grid made by [sd_sweep()] is not
#' regenerated as a whole (an error says so); its cells, listed in its
#' metadata, are ordinary images.
#'
#' @param path Path of a PNG written by rdiffusers, or an `sd_image`.
#' @param ... Settings to change, named like [sd_generate()]'s arguments
#'   (`steps`, `guidance_scale`, `width`, `height`, `scheduler`, `seed`,
#'   `prompt`, `negative_prompt`, `strength`, `clip_skip`, `device`, `dtype`,
#'   `optimize`, `model`, `config`; another `model` runs the recorded sampler
#'   with its own scheduler configuration, while a local model that has
#'   moved, its files unchanged, is the same model, and `config` says where a
#'   single-file checkpoint's configuration folder is now). They are recorded
#'   in the new file under
#'   `reproduced_from`. With overrides the pixels are not expected to match.
#'   `NULL` means what it means for [sd_generate()]: `seed = NULL` a random
#'   seed, `negative_prompt = NULL` none, `steps = NULL` the model's default.
#' @param image,mask For images made by [sd_img2img()] or [sd_inpaint()]: the
#'   input image (and mask), in any form those functions take. Their pixel
#'   hashes must match the ones recorded.
#' @param loras Where LoRA files that have moved since the image was made
#'   are now: a named character vector, names being the LoRA names the
#'   image records (`png_read_meta(path)$loras`), values their new paths,
#'   e.g. `c(ink = "~/loras/ink.safetensors")`. Each file must still have
#'   the recorded sha256.
#' @param trusted `TRUE` to allow loading the image's model when it is a
#'   pickle checkpoint (`.ckpt`, `.pt`, ...), as for [sd_load_model()], and
#'   the LoRA files it records when they are pickles, as for
#'   [sd_load_lora()]: they can run code when loaded, and the file's
#'   metadata names them. A
#'   single-file checkpoint is loaded with the `config` and a hub model with
#'   the weight `variant` recorded in the file.
#' @inheritParams sd_generate
#' @returns An `sd_reproduction`: a list with `identical` (`TRUE` when the
#'   decoded pixels are bit-identical), `image` (the new [sd_image][new_sd_image]),
#'   `original` (the path), `differences` (a data frame of what differs in the
#'   stack or settings: `what`, `original`, `now`) and `pixels` (number of
#'   differing pixels and the largest difference, 0-255). Its `print()`
#'   says what differs; its `plot()` draws the original and the new image
#'   side by side, titled with the verdict.
#' @family metadata
#' @export
#' @examplesIf rdiffusers::sd_available()
#' img <- sd_generate("a lighthouse", model = "tiny", steps = 2,
#'                    width = 64, height = 64, seed = 7)
#' sd_reproduce(img$path)             # or sd_reproduce(img)
#' r <- sd_reproduce(img$path, steps = 3)   # an override: pixels differ
#' plot(r)
sd_reproduce <- function(path, ..., image = NULL, mask = NULL, loras = NULL,
                         output_dir = sd_output_dir(), progress = NULL, trusted = FALSE) {
  path <- image_path(path)
  check_flag(trusted)
  meta <- png_read_meta(path)
  if (!identical(attr(meta, "tool"), "rdiffusers") || is.null(meta$task)) {
    sd_abort(
      c("{.file {path}} has no rdiffusers metadata, so it cannot be regenerated exactly.",
        i = "{.fn png_read_meta} still shows the settings other tools stored."),
      class = "rdiffusers_error_reproduce"
    )
  }
  if (identical(meta[["task"]], "sweep")) {
    sd_abort(
      c("{.file {path}} is an {.fn sd_sweep} grid, which is not regenerated as a whole.",
        i = "Regenerate its cells: their files are listed in {.code png_read_meta(path)$cells}."),
      class = "rdiffusers_error_reproduce"
    )
  }
  if (!rlang::is_string(meta[["task"]]) ||
      !meta[["task"]] %in% c("txt2img", "img2img", "inpaint")) {
    sd_abort("{.file {path}} records task {.val {format(meta[['task']])}}, which {.fn sd_reproduce} does not know.",
             class = "rdiffusers_error_reproduce")
  }
  meta <- as.list(meta)
  check_recorded(meta, path)
  meta$loras <- relocate_loras(meta$loras, loras)
  overrides <- check_overrides(list(...))
  # Settings the task does not use would change nothing yet be recorded.
  unused <- c(
    strength = !is.null(overrides$strength) && meta$task == "txt2img",
    image = !is.null(image) && meta$task == "txt2img",
    mask = !is.null(mask) && meta$task != "inpaint"
  )
  if (any(unused)) {
    abort_input("{.file {path}} is a {meta$task} image: {.arg {names(unused)[unused]}} {?is/are} not used to make it.")
  }
  settings <- utils::modifyList(meta, overrides, keep.null = TRUE)

  differences <- stack_differences(meta, settings, overrides)
  input_dir <- new_image_dir()
  on.exit(remove_path(input_dir, recursive = TRUE), add = TRUE)
  inputs <- reproduce_inputs(meta, image, mask, input_dir)
  differences <- rbind(differences, inputs$differences)

  # A new model is loaded at its default revision, variant and config, not
  # the recorded ones; the same local files moved elsewhere (another
  # machine) are the same model.
  same_model <- is.null(overrides$model) || same_local_model(overrides$model, meta)
  load_args <- rlang::exec(check_dots_load, !!!compact(list(
    revision = if (same_model && identical(meta$model_source, "hub")) meta$model_revision,
    variant = if (same_model) meta$model_variant,
    config = overrides$config %||% (if (same_model) meta$model_config),
    device = settings$device, dtype = settings$dtype, optimize = settings$optimize,
    clip_skip = settings$clip_skip, trusted = if (trusted) TRUE
  )))
  model <- reproduce_model(meta, overrides)
  check_model_revision(model, meta, same_model, load_args)

  restore <- swap_loras(model, meta$loras, load_args, trusted = trusted)
  on.exit(restore(), add = TRUE)

  # Another model takes the recorded sampler with its own scheduler
  # configuration: the recorded one holds the old model's noise schedule
  # and prediction type.
  scheduler_changed <- "scheduler" %in% names(overrides)
  if (!scheduler_changed && !same_model) {
    settings$scheduler <- recorded_sampler(meta)
    scheduler_changed <- TRUE
  }
  new <- sd_run(
    task = meta$task, prompt = settings$prompt,
    negative_prompt = settings$negative_prompt, model = model,
    width = settings$width, height = settings$height, steps = settings$steps,
    guidance_scale = settings$guidance_scale, seed = settings$seed, n = 1,
    scheduler = settings$scheduler,
    scheduler_config = if (!scheduler_changed) meta$scheduler_config,
    output_dir = output_dir, load_args = load_args, progress = progress,
    image = inputs$image, mask = inputs$mask, strength = settings$strength,
    keep_unmasked = settings$keep_unmasked %||% TRUE,
    extra_meta = list(reproduced_from = list(
      file = normalizePath(path, winslash = "/"),
      pixel_sha256 = meta$pixel_sha256,
      overrides = overrides
    ))
  )
  differences <- rbind(override_differences(meta, overrides, new$meta), differences)
  new_sd_reproduction(path, meta, new, differences)
}

# The recorded scheduler by the name that means it on any model: the A1111
# sampler with its schedule type where one was recorded, else the class.
recorded_sampler <- function(meta) {
  sampler <- meta$sampler
  type <- meta$schedule_type
  if (!rlang::is_string(sampler) || !rlang::is_string(type) ||
      !type %in% c("Karras", "Uniform", "Automatic")) {
    return(meta$scheduler)
  }
  if (identical(type, "Karras")) paste(sampler, "Karras") else sampler
}

# The entries sd_reproduce() reads beyond the settings sd_run() checks must
# have the shape rdiffusers writes: a hand-edited or crafted file fails here,
# with its path, instead of with "$ operator is invalid" halfway.
check_recorded <- function(meta, path, call = caller_env()) {
  is_named_list <- function(x) is.list(x) && (length(x) == 0 || !is.null(names(x)))
  lora_ok <- function(l) {
    is_named_list(l) && rlang::is_string(l$name) && rlang::is_string(l$path) &&
      rlang::is_string(l$sha256) && is.numeric(l$scale) && length(l$scale) == 1
  }
  bad <- c(
    versions = !is.null(meta$versions) && !is_named_list(meta$versions),
    scheduler_config = !is.null(meta$scheduler_config) && !is_named_list(meta$scheduler_config),
    loras = !is.null(meta$loras) &&
      !(is.list(meta$loras) && is.null(names(meta$loras)) &&
          all(vapply(meta$loras, lora_ok, logical(1))))
  )
  if (any(bad)) {
    sd_abort(
      c("{.file {path}} records {.field {names(bad)[bad]}} in a form rdiffusers does not write.",
        i = "The file's metadata was edited or made by other software."),
      class = "rdiffusers_error_reproduce", call = call
    )
  }
  invisible()
}

# The recorded LoRAs with the new paths `moved` gives (a named character
# vector: recorded name -> path); the files are still checked by hash.
relocate_loras <- function(loras, moved, call = caller_env()) {
  if (is.null(moved)) return(loras)
  names <- vapply(loras, `[[`, "", "name")
  if (!is.character(moved) || length(moved) == 0 || anyNA(moved) || any(moved == "") ||
      is.null(names(moved)) || anyNA(names(moved)) || any(names(moved) == "")) {
    abort_input(
      c("{.arg loras} must be a named character vector of file paths, e.g. {.code c(ink = \"~/loras/ink.safetensors\")}.",
        i = "Its names are the LoRA names the image records: {.val {names}}."),
      call = call
    )
  }
  twice <- unique(names(moved)[duplicated(names(moved))])
  if (length(twice) > 0) {
    abort_input("{.arg loras} names {.val {twice}} more than once.", call = call)
  }
  unknown <- setdiff(names(moved), names)
  if (length(unknown) > 0) {
    abort_input(
      c("This image records no LoRA named {.val {unknown}}.",
        i = if (length(names)) "It records {.val {names}}." else "It was made without LoRAs."),
      call = call
    )
  }
  for (i in which(names %in% names(moved))) {
    loras[[i]]$path <- absolute_path(moved[[names[[i]]]])
  }
  loras
}

# Which settings may be changed, and the checks sd_generate() would apply.
check_overrides <- function(overrides, call = caller_env()) {
  allowed <- c("steps", "guidance_scale", "width", "height", "scheduler", "seed",
               "prompt", "negative_prompt", "strength", "clip_skip", "device",
               "dtype", "optimize", "model", "config")
  if (length(overrides) > 0 && (is.null(names(overrides)) || any(names(overrides) == ""))) {
    abort_input("Every setting in {.arg ...} must be named, e.g. {.code steps = 30}.", call = call)
  }
  twice <- unique(names(overrides)[duplicated(names(overrides))])
  if (length(twice) > 0) {
    abort_input("{.arg {twice}} {?is/are} given more than once.", call = call)
  }
  bad <- setdiff(names(overrides), allowed)
  if (length(bad) > 0) {
    abort_input(
      c("Cannot override {.val {bad}}.", i = "Settings that can be changed: {.val {allowed}}."),
      call = call
    )
  }
  # One image is regenerated: one prompt, one seed. The other settings are
  # checked by sd_run() and check_dots_load() like sd_generate()'s, NULL
  # included (seed = NULL: a random one; negative_prompt = NULL: none).
  for (name in intersect(c("prompt", "negative_prompt", "seed", "model"), names(overrides))) {
    value <- overrides[[name]]
    nullable <- name %in% c("negative_prompt", "seed")
    if (length(value) != 1 && !(nullable && is.null(value))) {
      abort_input("{.arg {name}} must be a single value to regenerate one image.", call = call)
    }
  }
  if (!is.null(overrides$strength)) {
    overrides$strength <- check_strength(overrides$strength, arg = "strength", call = call)
  }
  overrides
}

# Versions and run settings recorded in the file vs. the ones at hand.
stack_differences <- function(meta, settings, overrides, call = caller_env()) {
  now <- py_call("versions")
  devs <- py_call("devices")
  rows <- list()
  add <- function(what, original, current) {
    original <- if (is.null(original)) NA_character_ else as.character(original)
    current <- if (is.null(current)) NA_character_ else as.character(current)
    if (!identical(original, current)) {
      rows[[length(rows) + 1]] <<- data.frame(what = what, original = original, now = current)
    }
  }
  for (pkg in c("python", "torch", "diffusers", "transformers", "peft", "accelerate")) {
    add(pkg, meta$versions[[pkg]], now[[pkg]])
  }
  add("R", meta$versions$R, as.character(getRversion()))
  add("rdiffusers", meta$versions$rdiffusers, as.character(utils::packageVersion("rdiffusers")))
  add("torch_threads", meta$torch_threads, devs$torch_threads)
  add("blas", meta$blas, devs$blas)

  device <- settings$device
  base <- sub(":.*", "", device %||% "cpu")
  if (!identical(device, "auto") && !base %in% unlist(devs$available)) {
    available <- unlist(devs$available)
    if (!is.null(overrides$device)) {
      abort_input(
        c("{.arg device} {.val {device}} is not available on this machine.",
          i = "Available: {.val {available}}."),
        call = call
      )
    }
    sd_abort(
      c("The image was made on device {.val {device}}, which this machine does not have.",
        i = "Available: {.val {available}}. Pass e.g. {.code device = \"cpu\"} to regenerate it there (pixels will likely differ)."),
      class = "rdiffusers_error_reproduce", call = call
    )
  }
  if (length(rows) == 0) {
    return(data.frame(what = character(), original = character(), now = character()))
  }
  do.call(rbind, rows)
}

# The settings `overrides` changed: as given, or for one given as NULL
# (a random seed, the model's default steps) the value `used` records.
override_differences <- function(meta, overrides, used) {
  # Where the metadata records each setting, when not under its own name.
  recorded <- c(config = "model_config")
  rows <- lapply(names(overrides), function(name) {
    key <- if (name %in% names(recorded)) recorded[[name]] else name
    now <- overrides[[name]] %||% used[[key]]
    original <- format_value(meta[[key]])
    now <- format_value(now)
    if (!identical(original, now)) data.frame(what = name, original = original, now = now)
  })
  rows <- Filter(Negate(is.null), rows)
  if (length(rows) == 0) {
    return(data.frame(what = character(), original = character(), now = character()))
  }
  do.call(rbind, rows)
}

format_value <- function(x) {
  if (is.null(x)) return(NA_character_)
  paste(format(x, digits = 17), collapse = ", ")
}

# Input images of img2img/inpaint must be the ones that were used.
reproduce_inputs <- function(meta, image, mask, dir, call = caller_env()) {
  out <- list(image = NULL, mask = NULL,
              differences = data.frame(what = character(), original = character(), now = character()))
  if (identical(meta$task, "txt2img")) return(out)
  need <- c(image = "init_image_sha256", mask = if (identical(meta$task, "inpaint")) "mask_sha256")
  given <- list(image = image, mask = mask)
  for (what in names(need)) {
    if (is.null(given[[what]])) {
      sd_abort(
        c("This image was made by {.fn {if (what == 'mask') 'sd_inpaint' else paste0('sd_', meta$task)}} from an input {what}.",
          i = "Pass the same {what} as {.arg {what}} (its pixel hash is {.val {meta[[need[[what]]]]}})."),
        class = "rdiffusers_error_reproduce", call = call
      )
    }
    file <- as_image_file(given[[what]], dir, what = what)
    hash <- py_call("pixel_hash", file$path, kind = what)
    if (!identical(hash, meta[[need[[what]]]])) {
      sd_abort(
        c("{.arg {what}} is not the {what} this image was made from.",
          x = "Its pixel hash is {.val {hash}}; the file records {.val {meta[[need[[what]]]]}}."),
        class = "rdiffusers_error_reproduce", call = call
      )
    }
    out[[what]] <- file$path
  }
  out
}

# The model to load: the preset name for tiny models (rebuilt identically),
# the hub id at its recorded commit, or the recorded path.
reproduce_model <- function(meta, overrides) {
  if (!is.null(overrides$model)) return(overrides$model)
  if (identical(meta$model_source, "tiny")) meta$model else meta$model_id %||% meta$model
}

# Whether `model` is a local copy of the recorded local model: the same
# content, wherever it is now.
same_local_model <- function(model, meta) {
  isTRUE(meta$model_source %in% c("dir", "file")) && rlang::is_string(model) &&
    file.exists(model) && identical(
      py_call("content_revision", absolute_path(model)), meta$model_revision
    )
}

# Local weights must be the ones that made the image.
check_model_revision <- function(model, meta, same_model, load_args, call = caller_env()) {
  if (!same_model || identical(meta$model_source, "hub")) return(invisible())
  if (isTRUE(meta$model_source %in% c("dir", "file")) && !file.exists(model)) {
    sd_abort(
      c("The model that made this image, {.file {model}}, is not there any more.",
        i = "If it moved, give its new path as {.arg model}."),
      class = "rdiffusers_error_reproduce", call = call
    )
  }
  config <- load_args$config
  if (rlang::is_string(config) && is_absolute(config) && !dir.exists(config)) {
    sd_abort(
      c("The configuration folder of this checkpoint, {.file {config}}, is not there any more.",
        i = "If it moved, give its new path as {.arg config}."),
      class = "rdiffusers_error_reproduce", call = call
    )
  }
  info <- rlang::exec(py_call, "load_pipeline", model = model, cache_dir = sd_cache_dir(),
                      !!!compact(load_args[c("device", "dtype", "optimize", "variant", "config",
                                             "trusted")]),
                      call = call)
  if (!identical(info$revision, meta$model_revision)) {
    sd_abort(
      c("The model files of {.val {model}} (weights or configuration) are not the ones that made this image.",
        x = "Recorded: {.val {meta$model_revision}}; now: {.val {info$revision}}."),
      class = "rdiffusers_error_reproduce", call = call
    )
  }
  # A single file's architecture comes from its config folder.
  if (!is.null(meta$model_config_revision) &&
      !identical(info$config_revision, meta$model_config_revision)) {
    sd_abort(
      c("The configuration folder {.file {meta$model_config}} of {.val {model}} is not the one that made this image.",
        x = "Recorded: {.val {meta$model_config_revision}}; now: {.val {info$config_revision %||% 'none'}}."),
      class = "rdiffusers_error_reproduce", call = call
    )
  }
  invisible()
}

# Puts exactly the recorded LoRAs (files checked by hash) on the model and
# returns a function that brings back the LoRAs it had before. Recorded
# pickle files need `trusted`, as anywhere else: the metadata of a PNG from
# someone else decides which files are read.
swap_loras <- function(model, loras, load_args, trusted = FALSE, call = caller_env()) {
  dots <- compact(load_args[load_arg_names])
  for (l in loras) {
    problem <- lora_file_problem(l$path, l$sha256)
    if (!is.null(problem)) {
      name <- if (identical(make.names(l$name), l$name)) l$name else paste0("`", l$name, "`")
      hint <- sprintf('loras = c(%s = "path")', name)
      sd_abort(
        c("The LoRA {.val {l$name}} used for this image cannot be loaded again.",
          x = problem,
          i = "If the file has moved, give its new path: {.code {hint}}."),
        class = "rdiffusers_error_reproduce", call = call
      )
    }
  }
  before <- rlang::exec(sd_loras, model = model, !!!dots)
  wanted <- lora_keys(vapply(loras, `[[`, "", "name"), vapply(loras, `[[`, "", "sha256"),
                      vapply(loras, function(l) as.double(l$scale), 0))
  if (identical(wanted, lora_keys(before$name, before$sha256, before$scale))) {
    return(function() invisible())
  }
  # The LoRAs loaded now come back from their files afterwards: make sure
  # they can, before anything changes.
  for (i in seq_len(nrow(before))) {
    problem <- lora_file_problem(before$path[[i]], before$sha256[[i]])
    if (!is.null(problem)) {
      sd_abort(
        c("The LoRA {.val {before$name[[i]]}} loaded now could not be put back afterwards.",
          x = problem,
          i = "Unload it first: {.code sd_unload_lora(\"{before$name[[i]]}\")}."),
        class = "rdiffusers_error_reproduce", call = call
      )
    }
  }

  if (nrow(before) > 0) rlang::exec(sd_unload_lora, model = model, !!!dots)
  put_back <- function() {
    rlang::exec(sd_unload_lora, model = model, !!!dots)
    for (i in seq_len(nrow(before))) {
      # Loaded before by the user (trusted then where it is a pickle); the
      # content is the one checked above.
      rlang::exec(sd_load_lora, before$path[[i]], scale = before$scale[[i]],
                  adapter_name = before$name[[i]], model = model, trusted = TRUE, !!!dots)
    }
  }
  # After generation: a failure to restore must not lose the new image.
  restore <- function() {
    tryCatch(put_back(), error = function(e) {
      cli::cli_warn(
        c("Could not put back the LoRAs loaded before {.fn sd_reproduce}.",
          x = conditionMessage(e), i = "See {.fn sd_loras}."),
        class = "rdiffusers_warning", call = call
      )
    })
  }
  tryCatch(
    for (l in loras) {
      rlang::exec(sd_load_lora, l$path, scale = l$scale, adapter_name = l$name,
                  model = model, trusted = trusted, !!!dots)
    },
    error = function(e) {
      put_back()
      stop(e)
    }
  )
  restore
}

# Why a LoRA file cannot be loaded as the one recorded (a message), or NULL.
lora_file_problem <- function(path, sha256) {
  if (!rlang::is_string(path) || !file.exists(path)) {
    return(cli::format_inline("No file at {.file {path}}."))
  }
  hash <- py_call("file_sha256", path)
  if (!identical(hash, sha256)) {
    return(cli::format_inline(
      "{.file {path}} has changed: sha256 {.val {sha256}} then, {.val {hash}} now."
    ))
  }
  NULL
}

# One string per LoRA: what must agree for two LoRA lists to be the same.
# Scales one by one: format() of a vector pads them to a common width.
lora_keys <- function(name, sha256, scale) {
  paste(name, sha256, vapply(scale, function(s) format(s, digits = 17), ""))
}

new_sd_reproduction <- function(path, meta, image, differences) {
  # Compared as RGBA, so that a copy re-saved with an opaque alpha channel
  # or as grey still compares pixel by pixel.
  original <- read_png_array(path, alpha = TRUE)
  now <- read_png_array(image$path, alpha = TRUE)
  if (identical(dim(original), dim(now))) {
    diff <- abs(original - now)
    per_pixel <- apply(diff, c(1, 2), max)
    pixels <- list(differing = sum(per_pixel > 0), max_difference = round(max(diff) * 255))
  } else {
    pixels <- list(differing = NA_integer_, max_difference = NA_real_)
  }
  # A file without a recorded pixel hash (written by other tools, or edited)
  # is judged by its pixels alone.
  same_hash <- is.null(meta$pixel_sha256) ||
    identical(image$meta$pixel_sha256, meta$pixel_sha256)
  structure(
    list(
      identical = same_hash && identical(pixels$differing, 0L),
      image = image,
      # Absolute: print() and plot() find it after setwd().
      original = normalizePath(path, winslash = "/"),
      differences = differences,
      pixels = pixels
    ),
    class = "sd_reproduction"
  )
}

#' @export
format.sd_reproduction <- function(x, ...) {
  head <- if (isTRUE(x$identical)) {
    cli::format_inline("{cli::symbol$tick} Bit-identical to {.file {x$original}}")
  } else if (is.na(x$pixels$differing)) {
    cli::format_inline("{cli::symbol$cross} Not identical: the size differs from {.file {x$original}}")
  } else {
    cli::format_inline(
      "{cli::symbol$cross} Not identical: {x$pixels$differing} pixel{?s} differ{?s/} (by up to {x$pixels$max_difference}/255) from {.file {x$original}}"
    )
  }
  lines <- c(head, cli::format_inline("New image: {.file {x$image$path}}"))
  if (nrow(x$differences) > 0) {
    lines <- c(lines, "What differs:", sprintf(
      "  %s: %s -> %s", x$differences$what, x$differences$original, x$differences$now
    ))
  } else {
    lines <- c(lines, "Stack and settings: the same as recorded.")
  }
  lines
}

#' @export
print.sd_reproduction <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

#' @export
plot.sd_reproduction <- function(x, ...) {
  main <- if (isTRUE(x$identical)) {
    "Bit-identical"
  } else if (is.na(x$pixels$differing)) {
    "Not identical: the size differs"
  } else {
    cli::pluralize(
      "Not identical: {x$pixels$differing} pixel{?s} differ{?s/} (by up to {x$pixels$max_difference}/255)"
    )
  }
  call <- environment()
  original <- structure(list(path = x$original), class = class(x))
  arrays <- list(read_png_array(image_file(original, call = call)),
                 read_png_array(image_file(x$image, call = call)))
  draw_image_grid(arrays, ncol = 2, labels = c("original", "reproduced"), main = main)
  invisible(x)
}
