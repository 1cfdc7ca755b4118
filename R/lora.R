#' LoRA adapters: load, list, rescale, unload
#'
#' A LoRA is a small file of weight changes that gives a model a style or a
#' subject. `sd_load_lora()` adds one to a loaded model; every later
#' [sd_generate()], [sd_img2img()] and [sd_inpaint()] with that model uses it
#' until `sd_unload_lora()`. Several LoRAs can be stacked, each with its own
#' scale; `sd_lora_scale()` changes scales without reading the files again.
#' Every image records the LoRAs it used (name, file sha256, scale) in its
#' metadata, and A1111's `<lora:name:scale>` in its `parameters` text with
#' the `Lora hashes` by which A1111 and Civitai find the files.
#'
#' @section Safety and checks:
#' `.safetensors` files are read by default. Pickle files (`.bin`, `.ckpt`,
#' `.pt`, `.pth`, `.pkl`) can run arbitrary code when loaded and are refused unless
#' `trusted = TRUE`. A file is rejected with an error of class
#' `rdiffusers_error_lora` when it is not a LoRA, when it loads nothing, or
#' when it was made for another base model (for example an SDXL LoRA on
#' SD 1.5); the model is then left exactly as it was, so a seed still gives
#' the same pixels. A model loaded with `optimize = "bf16-compile"` takes no
#' LoRAs (its compiled graph holds the weights as constants): that is an
#' error of class `rdiffusers_error_input`; use `optimize = "bf16"`.
#'
#' `sd_unload_lora()` removes the adapter layers entirely: the same seed
#' gives bit-identical pixels to before loading. LoRAs belong to one cached
#' model (one entry of [sd_pipelines()]); other models are not affected.
#' `sd_loras()`, `sd_lora_scale()` and `sd_unload_lora()` never load a model
#' (nor start Python when none is loaded): they act on the pipeline that
#' `model` and `...` select if it is cached (a directory may be given by any
#' path to it).
#'
#' @param path Path of a LoRA file (`.safetensors`, or a pickle format with
#'   `trusted = TRUE`).
#' @param scale Strength of the LoRA, a finite number; 1 applies it fully, 0
#'   switches it off, values above 1 or below 0 exaggerate or invert it. For
#'   `sd_lora_scale()` one per `adapter_name` (matched by name when named,
#'   e.g. `c(ink = 0.5, paper = 1)`), or one for all.
#' @param adapter_name Name of the adapter: letters, digits and `_`, not
#'   starting with a digit, other than Python keywords (such as `"class"`)
#'   and names PyTorch modules use themselves (such as `"train"` or
#'   `"float"`). `NULL` uses the file name
#'   (`"pixel-art.v2.safetensors"` becomes `"pixel_art_v2"`, `"train.safetensors"`
#'   becomes `"lora_train"`, a name without ASCII letters or digits
#'   `"lora_"` and 8 hex digits). Loading the same file under a name that is
#'   already loaded only sets its scale. For `sd_unload_lora()`, `NULL`
#'   unloads all.
#' @param model The model the LoRA applies to, as in [sd_generate()].
#' @param trusted `TRUE` to allow pickle files (`.bin`, `.ckpt`, `.pt`,
#'   `.pth`, `.pkl`), which can run code on your computer when loaded. Only for files
#'   from a source you trust.
#' @param ... Load options that select which cached pipeline of `model` is
#'   meant, as for [sd_generate()]: `revision`, `device`, `dtype`, `variant`,
#'   `config`, `optimize` (by default the option `rdiffusers.optimize`, as
#'   for [sd_generate()]).
#' @returns `sd_load_lora()` and `sd_lora_scale()`: the LoRAs now on the
#'   model, as `sd_loras()` returns them, invisibly. `sd_loras()`: a data
#'   frame with columns `name`, `path`, `sha256` (of the file) and `scale`, one
#'   row per LoRA in load order (no rows when the model is not loaded).
#'   `sd_unload_lora()`: the names unloaded, invisibly.
#' @family lora
#' @export
#' @examplesIf rdiffusers::sd_available() && file.exists("my-style.safetensors")
#' sd_load_lora("my-style.safetensors", scale = 0.8)
#' sd_loras()
#' img <- sd_generate("a castle", seed = 1)
#' sd_lora_scale("my_style", 0.4)
#' sd_unload_lora()
sd_load_lora <- function(path, scale = 1, adapter_name = NULL,
                         model = sd_default_model(), trusted = FALSE, ...) {
  load_args <- check_lora_dots(...)
  path <- check_lora_path(path, trusted)
  scale <- check_lora_scale(scale)
  check_adapter_name(adapter_name, allow_null = TRUE)
  check_model(model)
  rlang::exec(
    py_call, "load_lora",
    model = model, path = path, scale = scale, adapter_name = adapter_name,
    trusted = isTRUE(trusted), cache_dir = sd_cache_dir(), !!!load_args
  )
  invisible(loras_df(rlang::exec(py_call, "list_loras", model = model,
                                 cache_dir = sd_cache_dir(), !!!load_args)))
}

#' @rdname sd_load_lora
#' @export
sd_unload_lora <- function(adapter_name = NULL, model = sd_default_model(), ...) {
  load_args <- check_lora_dots(...)
  if (!is.null(adapter_name)) {
    check_adapter_names(adapter_name)
  }
  check_string(model)
  if (!any_model_cached()) {
    if (is.null(adapter_name)) return(invisible(character()))
    abort_not_loaded(adapter_name, model)
  }
  check_model(model)
  names <- rlang::exec(
    py_call, "unload_lora",
    model = model,
    # Unnamed: a named list reaches Python as a dict, whose keys it would read.
    adapter_name = if (is.null(adapter_name)) NULL else as.list(unname(adapter_name)),
    cache_dir = sd_cache_dir(), !!!load_args
  )
  invisible(as.character(unlist(names)))
}

#' @rdname sd_load_lora
#' @export
sd_loras <- function(model = sd_default_model(), ...) {
  load_args <- check_lora_dots(...)
  check_string(model)
  # Listing never loads a model just to say it has no LoRAs (Python looks
  # the pipeline up with these load arguments, without loading it).
  if (!any_model_cached()) {
    return(loras_df(list()))
  }
  check_model(model)
  loras_df(rlang::exec(py_call, "list_loras", model = model,
                       cache_dir = sd_cache_dir(), !!!load_args))
}

#' @rdname sd_load_lora
#' @export
sd_lora_scale <- function(adapter_name, scale, model = sd_default_model(), ...) {
  load_args <- check_lora_dots(...)
  check_adapter_names(adapter_name)
  if (!is.numeric(scale) || !length(scale) %in% c(1L, length(adapter_name))) {
    abort_input("{.arg scale} must be one number, or one per {.arg adapter_name} ({length(adapter_name)}).")
  }
  if (anyNA(scale) || any(!is.finite(scale))) {
    abort_input("{.arg scale} must be finite numbers, not {.val {scale}}.")
  }
  if (!is.null(names(scale))) {
    # c(b = 0.2, a = 1): by name, not by position.
    if (!setequal(names(scale), adapter_name) || anyDuplicated(names(scale))) {
      abort_input("The names of {.arg scale} must be those of {.arg adapter_name}, each once.")
    }
    scale <- scale[adapter_name]
  }
  scales <- as.list(rep_len(as.double(scale), length(adapter_name)))
  names(scales) <- adapter_name
  check_string(model)
  if (!any_model_cached()) {
    abort_not_loaded(adapter_name, model)
  }
  check_model(model)
  rlang::exec(py_call, "set_lora_scales", model = model, scales = scales,
              cache_dir = sd_cache_dir(), !!!load_args)
  invisible(sd_loras(model, ...))
}

# Helpers ----------------------------------------------------------------

loras_df <- function(records) {
  field <- function(name, fun, type) {
    vapply(records, function(r) fun(r[[name]] %||% NA), type)
  }
  data.frame(
    name = field("name", as.character, character(1)),
    path = field("path", as.character, character(1)),
    sha256 = field("sha256", as.character, character(1)),
    scale = field("scale", as.double, double(1)),
    stringsAsFactors = FALSE
  )
}

abort_not_loaded <- function(adapter_name, model, call = caller_env()) {
  n <- length(adapter_name)
  abort_input("No LoRA{cli::qty(n)}{?s} named {.val {adapter_name}} {cli::qty(n)}{?is/are} loaded: model {.val {model}} is not loaded.",
              call = call)
}

# Whether any pipeline is cached (never starts Python: without Python there
# is none). Which one a call means is decided in Python, from the model and
# the load arguments.
any_model_cached <- function() nrow(sd_pipelines()) > 0

lora_safe_ext <- "safetensors"
lora_pickle_ext <- c("bin", "ckpt", "pt", "pth", "pkl")

check_lora_path <- function(path, trusted, arg = caller_arg(path), call = caller_env()) {
  check_string(path, arg = arg, call = call)
  check_flag(trusted, arg = "trusted", call = call)
  check_file_exists(path, "LoRA file", class = c("rdiffusers_error_lora", "rdiffusers_error_input"),
                    call = call)
  ext <- tolower(tools::file_ext(path))
  if (ext %in% lora_pickle_ext && !trusted) {
    sd_abort(
      c("Refusing to load the pickle file {.file {path}}.",
        x = "{.val .{ext}} files can run arbitrary code when they are loaded.",
        i = "Use a {.val .safetensors} version of the LoRA, or {.code trusted = TRUE} if you trust where the file comes from."),
      class = "rdiffusers_error_lora", call = call
    )
  }
  if (!ext %in% c(lora_safe_ext, lora_pickle_ext)) {
    sd_abort(
      c("{.file {path}} is not a LoRA file type.",
        i = "Expected {.val .safetensors} (or {.val {paste0('.', lora_pickle_ext)}} with {.code trusted = TRUE})."),
      class = "rdiffusers_error_lora", call = call
    )
  }
  normalizePath(path, winslash = "/", mustWork = TRUE)
}

check_lora_scale <- function(scale, arg = caller_arg(scale), call = caller_env()) {
  check_number(scale, arg = arg, call = call)
}

check_adapter_name <- function(x, allow_null = FALSE, arg = caller_arg(x),
                               call = caller_env()) {
  if (allow_null && is.null(x)) {
    return(invisible(x))
  }
  check_string(x, arg = arg, call = call)
  check_adapter_names(x, arg = arg, call = call)
}

# Adapter names become keys of PyTorch module dicts, where a "." would be
# read as a path; so only ASCII identifiers are accepted.
check_adapter_names <- function(x, arg = caller_arg(x), call = caller_env()) {
  ok <- is.character(x) && length(x) >= 1 && !anyNA(x) &&
    all(grepl("^[A-Za-z_][A-Za-z0-9_]*$", x))
  if (!ok) {
    abort_input(
      c("{.arg {arg}} must be a name of letters, digits and {.val _} that does not start with a digit.",
        x = "Got {.val {x}}."),
      call = call
    )
  }
  if (anyDuplicated(x)) {
    abort_input("{.arg {arg}} has duplicates: {.val {x[duplicated(x)]}}.", call = call)
  }
  invisible(x)
}

# LoRA functions take the load options only (no clip_skip), with the
# default optimize mode sd_generate() uses: otherwise they would act on
# another cached copy of the model than the one that generates.
check_lora_dots <- function(..., call = caller_env()) {
  with_optimize(check_dots_load(..., .allowed = load_arg_names, call = call), call = call)
}
