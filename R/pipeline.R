#' Default model and cache directory
#'
#' `sd_default_model()` is the model used when a function's `model` argument
#' is left out: the option `rdiffusers.model`, or `"tiny"` (a tiny
#' random-weight pipeline built offline, useful for trying things out and for
#' tests; its images are noise). Set e.g. `options(rdiffusers.model = "sd15")`
#' to use a real model by default.
#'
#' `sd_cache_dir()` is where the tiny models are built: the option
#' `rdiffusers.cache_dir`, or [tools::R_user_dir()]`("rdiffusers", "cache")`.
#' Models from the Hugging Face hub use the hub's own cache. It also holds
#' the kernels `torch.compile` makes (`optimize = "bf16-compile"`), so that
#' later sessions reuse them: unless the environment variable
#' `TORCHINDUCTOR_CACHE_DIR` is set, rdiffusers sets it to its
#' `torchinductor` folder before Python starts.
#'
#' @returns A string; for `sd_cache_dir()` an absolute path (`"~"` expanded,
#'   a relative option taken from the working directory).
#' @family pipelines
#' @export
#' @examples
#' sd_default_model()
#' sd_cache_dir()
sd_default_model <- function() {
  getOption("rdiffusers.model", "tiny")
}

#' @rdname sd_default_model
#' @export
sd_cache_dir <- function() {
  dir <- getOption("rdiffusers.cache_dir", tools::R_user_dir("rdiffusers", "cache"))
  if (!rlang::is_string(dir) || !nzchar(dir)) {
    abort_input("Option {.code rdiffusers.cache_dir} must be a folder path, not {.obj_type_friendly {dir}}.")
  }
  if (file.exists(dir) && !dir.exists(dir)) {
    sd_abort("Option {.code rdiffusers.cache_dir} is {.file {dir}}, a file, not a folder.",
             class = "rdiffusers_error_file")
  }
  absolute_path(dir)
}

#' Load a Stable Diffusion pipeline
#'
#' Loads a pipeline into memory (or finds it in the cache) so that later calls
#' to [sd_generate()] with the same model and options start at once. Calling
#' it is optional: [sd_generate()] loads what it needs. Pipelines stay cached
#' until [sd_free()]. A local model whose files (or, for a single-file
#' checkpoint, its `config` folder's) changed since it was loaded (re-saved
#' by a training run, say) is loaded again, and the copy of its old files is
#' freed, with the LoRAs loaded on it.
#'
#' @param model A preset name (see [sd_presets()]), a Hugging Face hub id
#'   such as `"stable-diffusion-v1-5/stable-diffusion-v1-5"`, a local
#'   diffusers directory, or a single-file checkpoint: `.safetensors`, or a
#'   pickle file (`.ckpt`, `.pt`, `.pth`, `.bin`, `.pkl`) with `trusted = TRUE`.
#'   Text-to-image models of Stable Diffusion 1.x/2.x, SDXL and SD3, from
#'   which img2img and inpainting are made; dedicated inpainting, refiner or
#'   pix2pix models are refused (they cannot make text-to-image images).
#' @param revision Hub revision (branch, tag or commit), or `NULL` for the
#'   default branch. Only for hub models (and presets, which are hub models).
#' @param device `"auto"` (CUDA, then MPS, then CPU), `"cpu"`, `"cuda"`,
#'   `"cuda:1"`, or `"mps"`. `"cuda"` means the current CUDA device and is
#'   recorded with its number (`"cuda:0"`), so both spellings share one
#'   loaded pipeline.
#' @param dtype `"auto"` (float16 on GPUs, float32 on CPU), `"float32"`,
#'   `"float16"` or `"bfloat16"`.
#' @param variant Weight variant on the hub such as `"fp16"`, or `NULL`.
#' @param config For a single-file checkpoint, a local diffusers directory
#'   or hub id whose configuration describes it; `NULL` otherwise (other
#'   models refuse it). Its `model_index.json` decides the pipeline class;
#'   without a `config` (or when it cannot be had offline) the checkpoint's
#'   tensor names decide, read from the `.safetensors` header alone.
#' @param trusted `TRUE` to allow a pickle checkpoint (`.ckpt`, `.pt`,
#'   `.pth`, `.bin`, `.pkl`), which can run code on your computer when
#'   loaded: it is read whole, Python objects beside the weights included
#'   (as in training checkpoints). Only for files from a source you trust.
#'   The trust is given to the file's content for the rest of the session: later calls with the same file (say
#'   [sd_load_lora()] on that model) need not repeat it; a changed file does.
#' @param optimize Speed settings. `"auto"`: on a CPU with native bfloat16
#'   (AVX512-BF16 / AMX) `"bf16"`; on CUDA channels-last memory (and, for a
#'   float32 pipeline, half precision and VAE tiling); otherwise `"none"`.
#'   `"none"`: the pipeline as diffusers loads it. `"bf16"`: denoiser and VAE
#'   in bfloat16 with channels-last memory behind a float32 interface (pixels
#'   differ a little from float32); on the CPU the convolution weights are
#'   also kept packed for oneDNN (faster, same pixels, one more copy of those
#'   weights in memory); on CUDA it needs a GPU with bfloat16 support (an
#'   error otherwise). `"fp16"` (GPU only), `"channels_last"`, and
#'   `"bf16-compile"` (adds `torch.compile()`: minutes to compile, again for
#'   each new image size; past torch's limit of 8 sizes an input error asks
#'   to [sd_free()] the model, where torch would quietly stop using the
#'   compiled code). The mode used is stored in each image's metadata.
#'   Defaults to the option `rdiffusers.optimize`.
#' @returns An `sd_pipeline` object: a list describing the loaded pipeline
#'   (`key`, `model`, `family`, `pipeline_class`, `device`, `dtype`,
#'   `scheduler`, `loaded`: whether this call loaded it, ...).
#' @family pipelines
#' @export
#' @examplesIf rdiffusers::sd_available()
#' pipe <- sd_load_model("tiny")
#' pipe
#' sd_free()
sd_load_model <- function(model = sd_default_model(), revision = NULL,
                          device = "auto", dtype = "auto", variant = NULL,
                          config = NULL,
                          optimize = getOption("rdiffusers.optimize", "auto"),
                          trusted = FALSE) {
  check_model(model)
  args <- check_load_args(list(
    revision = revision, device = device, dtype = dtype, variant = variant,
    config = config, optimize = optimize, trusted = trusted
  ))
  info <- with_status(
    "Loading {.val {model}}",
    rlang::exec(py_call, "load_pipeline", model = model, cache_dir = sd_cache_dir(), !!!args)
  )
  new_sd_pipeline(info)
}

new_sd_pipeline <- function(info) {
  stopifnot(is.list(info))
  structure(info, class = "sd_pipeline")
}

#' @export
format.sd_pipeline <- function(x, ...) {
  c(
    sprintf("<sd_pipeline> %s", x$model %||% "?"),
    sprintf("  %s (%s) on %s, %s", x$pipeline_class %||% "?", x$family %||% "?",
            x$device %||% "?", x$dtype %||% "?"),
    sprintf("  scheduler: %s; optimize: %s", x$scheduler %||% "?", x$optimize %||% "?"),
    sprintf("  source: %s%s", x$source %||% "?",
            if (!is.null(x$revision)) paste0(", revision ", x$revision) else "")
  )
}

#' @export
print.sd_pipeline <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

#' Pipelines in memory, and freeing them
#'
#' `sd_pipelines()` lists the pipelines cached in this R session;
#' `sd_free()` drops one model's pipelines or all of them, releasing their
#' (GPU) memory. Neither starts Python when it is not running yet.
#'
#' @param model `NULL` to free every pipeline, or a model as given to
#'   [sd_load_model()], however spelled (a preset or its hub id, any path to
#'   the same directory or file), which frees all its variants (devices,
#'   dtypes, ...); a cache key from `sd_pipelines()$key`; or an `sd_pipeline`
#'   object.
#' @returns `sd_pipelines()`: a data frame, one row per cached pipeline, with
#'   columns `model`, `family`, `pipeline_class`, `device`, `dtype` (the
#'   weights as loaded), `optimize` (the fast path applied on top, see
#'   [sd_load_model()]), `scheduler`, `source` and `key`. `sd_free()`: the
#'   number of pipelines freed, invisibly.
#' @family pipelines
#' @export
#' @examplesIf rdiffusers::sd_available()
#' sd_load_model("tiny")
#' sd_pipelines()
#' sd_free("tiny")
sd_pipelines <- function() {
  if (!reticulate::py_available(initialize = FALSE)) {
    return(pipelines_df(list()))   # nothing loaded yet: do not start Python
  }
  pipelines_df(py_call("cached_pipelines"))
}

#' @rdname sd_pipelines
#' @export
sd_free <- function(model = NULL) {
  if (inherits(model, "sd_pipeline")) {
    model <- model$key
  }
  check_string(model, allow_null = TRUE)
  if (!reticulate::py_available(initialize = FALSE)) {
    return(invisible(0L))   # nothing can be loaded: do not start Python
  }
  if (is.null(model)) {
    return(invisible(as.integer(py_call("free_pipelines"))))
  }
  invisible(as.integer(py_call("free_model", model)))
}

pipelines_df <- function(infos) {
  # The key (a long JSON string, for sd_free()) last, so a printed table
  # starts with what a reader looks for.
  cols <- c("model", "family", "pipeline_class", "device", "dtype", "optimize",
            "scheduler", "source", "key")
  rows <- lapply(infos, function(info) {
    vals <- lapply(cols, function(col) {
      v <- info[[col]]
      if (is.null(v)) NA_character_ else as.character(v)[[1]]
    })
    names(vals) <- cols
    as.data.frame(vals, stringsAsFactors = FALSE)
  })
  if (!length(rows)) {
    empty <- rep(list(character()), length(cols))
    names(empty) <- cols
    return(as.data.frame(empty, stringsAsFactors = FALSE))
  }
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  out
}

#' Model presets and schedulers
#'
#' `sd_presets()` lists the model names that can be used instead of a hub id,
#' with their default settings (used by [sd_generate()] when `width`,
#' `height`, `steps`, `guidance_scale` or `scheduler` are `NULL`; for
#' [sd_img2img()] the preset's steps are raised where needed so that
#' `steps * strength` runs at least one step). `"tiny"`, `"tiny-sdxl"`
#' and `"tiny-sd3"` are random-weight pipelines built offline.
#'
#' `sd_schedulers()` lists the names accepted by `scheduler =`: diffusers
#' class names (`"EulerAncestralDiscreteScheduler"`) and the sampler names of
#' AUTOMATIC1111's web UI (`"Euler a"`, `"DPM++ 2M Karras"`). A class name
#' gives that class with the model's configuration; an A1111 name gives the
#' class and options below (the table in diffusers' scheduler docs, with
#' A1111's timesteps). Either way Karras, exponential and beta sigmas are off
#' unless the name asks for them: a name with " Karras" adds
#' `use_karras_sigmas = TRUE` to the samplers that support it (Euler, Heun,
#' LMS, DPM2, DPM2 a, DPM++ 2M, DPM++ 2M SDE, DPM++ SDE, UniPC, DEIS).
#'
#' The samplers A1111 runs through k-diffusion space their timesteps over
#' the model's whole noise range, from timestep 999, as A1111's "Uniform"
#' schedule does (their Karras variants take `timestep_spacing = "linspace"`
#' for the same reason). SD1.5's and SDXL's own configs say `"leading"`,
#' which starts lower: at 4 steps at timestep 751. DDIM and PLMS keep the
#' model's `"leading"` timesteps, as A1111's do, and UniPC takes A1111's
#' defaults. DEIS, TCD and DDPM are short names for diffusers schedulers
#' that A1111 does not have. The schedule is close to A1111's, not the same,
#' in places: for the DPM++ samplers the last nonzero noise level differs,
#' and diffusers' DPM++ SDE is deterministic where A1111's adds noise. The
#' image metadata records the A1111 "Schedule type" that ran: for the
#' k-diffusion samplers `"Uniform"`, `"Karras"`, `"SGM Uniform"` (for
#' `"trailing"`) or `"DDIM"` (a model's own `"leading"` Euler, Euler a, Heun
#' or LMS where the steps divide 1000), never A1111 1.10's `"Automatic"`,
#' which is Karras for some of them, and none where none matches; for DDIM,
#' PLMS, UniPC and LCM, which have one schedule in A1111, `"Automatic"`.
#' `sd_schedulers(details = TRUE)` shows each name's exact options.
#'
#' | A1111 sampler | diffusers class | options |
#' |---|---|---|
#' | Euler | `EulerDiscreteScheduler` | `timestep_spacing = "linspace"` |
#' | Euler a | `EulerAncestralDiscreteScheduler` | `timestep_spacing = "linspace"` |
#' | Heun | `HeunDiscreteScheduler` | `timestep_spacing = "linspace"` |
#' | LMS | `LMSDiscreteScheduler` | `timestep_spacing = "linspace"` |
#' | DPM2 | `KDPM2DiscreteScheduler` | `timestep_spacing = "trailing"` (A1111 drops the next-to-last noise level) |
#' | DPM2 a | `KDPM2AncestralDiscreteScheduler` | `timestep_spacing = "trailing"` |
#' | DPM++ 2M | `DPMSolverMultistepScheduler` | `algorithm_type = "dpmsolver++", solver_order = 2, timestep_spacing = "linspace"` |
#' | DPM++ 2M SDE | `DPMSolverMultistepScheduler` | `algorithm_type = "sde-dpmsolver++", solver_order = 2, timestep_spacing = "linspace"` |
#' | DPM++ SDE | `DPMSolverSinglestepScheduler` | `algorithm_type = "dpmsolver++"` |
#' | DDIM | `DDIMScheduler` | `clip_sample = FALSE, set_alpha_to_one = FALSE` |
#' | PLMS (or PNDM) | `PNDMScheduler` | `skip_prk_steps = TRUE, set_alpha_to_one = FALSE` |
#' | UniPC | `UniPCMultistepScheduler` | `solver_order = 3, solver_type = "bh1", timestep_spacing = "linspace", final_sigmas_type = "sigma_min"` |
#' | (DEIS) | `DEISMultistepScheduler` | `algorithm_type = "deis"` |
#' | LCM | `LCMScheduler` | |
#' | (TCD) | `TCDScheduler` | |
#' | (DDPM) | `DDPMScheduler` | |
#'
#' SD3 models only work with flow-matching schedulers: there "Euler",
#' "Heun" and "LCM" mean `FlowMatchEulerDiscreteScheduler`,
#' `FlowMatchHeunDiscreteScheduler` and `FlowMatchLCMScheduler`; other
#' samplers are an error.
#'
#' @param details `FALSE` for the names only; `TRUE` for a data frame that
#'   also gives each name's class, options and A1111 sampler/schedule type.
#' @returns `sd_presets()`: a data frame with columns `name`, `model_id`,
#'   `family`, `width`, `height`, `steps`, `guidance_scale`, `scheduler`,
#'   `strength` (the default for [sd_img2img()]).
#'   `sd_schedulers()`: a character vector, or with `details = TRUE` a data
#'   frame with columns `name`, `class`, `options`, `sampler`,
#'   `schedule_type`.
#' @family pipelines
#' @export
#' @examplesIf rdiffusers::sd_available()
#' sd_presets()
#' head(sd_schedulers())
#' sd_schedulers(details = TRUE)[1:4, ]
sd_presets <- function() {
  presets <- presets_list()
  rows <- lapply(names(presets), function(name) {
    p <- presets[[name]]
    data.frame(
      name = name,
      model_id = p$model_id %||% NA_character_,
      family = p$family %||% NA_character_,
      width = as.integer(p$width %||% NA),
      height = as.integer(p$height %||% NA),
      steps = as.integer(p$steps %||% NA),
      guidance_scale = as.double(p$guidance_scale %||% NA),
      scheduler = p$scheduler %||% NA_character_,
      strength = as.double(p$strength %||% NA),
      stringsAsFactors = FALSE
    )
  })
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  out
}

#' @rdname sd_presets
#' @export
sd_schedulers <- function(details = FALSE) {
  check_flag(details)
  table <- schedulers_list()
  if (!details) {
    return(names(table))
  }
  options <- vapply(table, function(s) {
    kw <- s$kwargs
    if (length(kw) == 0) return("")
    paste(names(kw), vapply(kw, deparse, ""), sep = " = ", collapse = ", ")
  }, "")
  data.frame(
    name = names(table),
    class = vapply(table, function(s) s$cls, ""),
    options = unname(options),
    sampler = vapply(table, function(s) s$a1111 %||% NA_character_, ""),
    schedule_type = vapply(table, function(s) s$schedule_type %||% NA_character_, ""),
    row.names = NULL,
    stringsAsFactors = FALSE
  )
}

# Presets and schedulers do not change within a session: ask Python once.
presets_list <- function(call = caller_env()) {
  the$presets <- the$presets %||% py_call("presets", call = call)
  the$presets
}

schedulers_list <- function(call = caller_env()) {
  the$schedulers <- the$schedulers %||% py_call("schedulers", call = call)
  the$schedulers
}

# Checks ------------------------------------------------------------------

# A model is a preset name, a hub id ("owner/name"), or a local path. Only a
# bare name that is no preset and no existing path is certainly wrong.
check_model <- function(model, arg = caller_arg(model), call = caller_env()) {
  check_string(model, arg = arg, call = call)
  if (grepl("[/\\\\]", model) || file.exists(model)) {
    return(invisible(model))
  }
  presets <- names(presets_list(call = call))
  if (!model %in% presets) {
    sd_abort(
      c(
        "Unknown model {.val {model}}.",
        i = "Use a preset ({.val {presets}}), a Hugging Face hub id such as {.val stable-diffusion-v1-5/stable-diffusion-v1-5}, or the path of a local model."
      ),
      class = "rdiffusers_error_model",
      call = call
    )
  }
  invisible(model)
}

load_arg_names <- c("revision", "device", "dtype", "variant", "config", "optimize")

# The fast-path modes of optimize.py's MODES, plus "auto" (a test keeps
# them in step), so a misspelt mode fails before Python starts.
optimize_modes <- c("auto", "none", "channels_last", "bf16", "fp16", "bf16-compile")

# Load options with the optimize mode filled in as sd_load_model()'s default
# (the option), so every function finds the same cached pipeline; checked
# here, since the option bypasses check_dots_load().
with_optimize <- function(load_args, call = caller_env()) {
  load_args$optimize <- load_args$optimize %||% getOption("rdiffusers.optimize", "auto")
  check_choice(load_args$optimize, optimize_modes, arg = "optimize", call = call)
  load_args
}

# Validates load options (named list) and returns them ready for Python.
check_load_args <- function(args, call = caller_env()) {
  for (name in intersect(c("revision", "variant", "config"), names(args))) {
    check_string(args[[name]], allow_null = TRUE, arg = name, call = call)
  }
  if (!is.null(args$device)) {
    check_string(args$device, arg = "device", call = call)
    if (!grepl("^(auto|cpu|mps|cuda(:[0-9]+)?)$", args$device)) {
      abort_input(
        "{.arg device} must be {.val auto}, {.val cpu}, {.val cuda}, {.val cuda:N} or {.val mps}, not {.val {args$device}}.",
        call = call
      )
    }
  }
  if (!is.null(args$dtype)) {
    check_choice(args$dtype, c("auto", "float32", "float16", "bfloat16"), arg = "dtype",
                 call = call)
  }
  if (!is.null(args$optimize)) {
    check_choice(args$optimize, optimize_modes, arg = "optimize", call = call)
  }
  if (!is.null(args$trusted)) {
    check_flag(args$trusted, arg = "trusted", call = call)
  }
  args
}
