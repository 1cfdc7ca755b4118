# Result objects -----------------------------------------------------------
#
# sd_image:  list(path = <PNG path>, meta = <typed named list>)
# sd_images: a list of sd_image (several results of one call, or c() of them)

#' Generated images
#'
#' Every generation function returns an `sd_image` (one image) or an
#' `sd_images` (several). An `sd_image` is a list with `path`, the PNG file
#' on disk, and `meta`, the settings that made it (the same as
#' `png_read_meta(path)`). `sd_images` is a list of `sd_image` that can be
#' subset with `[` and `[[` and combined with `c()`.
#'
#' @param path Path of an existing image file (kept as an absolute path).
#' @param meta Named list of metadata, as [png_read_meta()] returns it, which
#'   is what `NULL` (the default) reads from the file. For
#'   a generated image: the arguments (`task`, `prompt`, `negative_prompt`,
#'   `seed`, `steps`, `width`, `height`, `guidance_scale`, `strength`,
#'   `clip_skip`, `scheduler` and its `scheduler_config`, `loras`, ...), the
#'   model (`model`, `model_id`, `model_revision`, `family`, ...), how it ran
#'   (`device`, `dtype`, `optimize`, `torch_threads`, `blas`, `versions`) and hashes
#'   of the pixels and of any input image and mask (`pixel_sha256`, ...).
#' @param x An object.
#' @returns `new_sd_image()`: an `sd_image`. `new_sd_images()`: an `sd_images`.
#'   `is_sd_image()`: `TRUE`/`FALSE`.
#' @family images
#' @export
#' @examplesIf rdiffusers::sd_available()
#' imgs <- sd_generate("a lighthouse", n = 2, steps = 2, width = 64, height = 64)
#' imgs
#' imgs[[1]]$meta$seed
new_sd_image <- function(path, meta = NULL) {
  x <- validate_sd_image(structure(list(path = path, meta = meta %||% list()), class = "sd_image"))
  # Absolute, as generated images' paths are: found after setwd().
  x$path <- normalizePath(x$path, winslash = "/")
  if (is.null(meta)) {
    x$meta <- tryCatch(as.list(png_read_meta(x$path)), rdiffusers_error = function(e) list())
  } else if (inherits(meta, "sd_meta")) {
    x$meta <- as.list(meta)
  }
  x
}

validate_sd_image <- function(x, call = caller_env()) {
  if (!is.character(x$path) || length(x$path) != 1 || is.na(x$path)) {
    abort_input("An {.cls sd_image} needs a single file path.", call = call)
  }
  if (!file.exists(x$path)) {
    sd_abort("Image file {.file {x$path}} does not exist.",
             class = "rdiffusers_error_file", call = call)
  }
  if (dir.exists(x$path)) {
    sd_abort("{.file {x$path}} is a directory, not an image file.",
             class = "rdiffusers_error_file", call = call)
  }
  if (!is.list(x$meta) || (length(x$meta) && is.null(names(x$meta)))) {
    abort_input("The metadata of an {.cls sd_image} must be a named list.", call = call)
  }
  x
}

#' @rdname new_sd_image
#' @param images A list of `sd_image` objects.
#' @export
new_sd_images <- function(images = list()) {
  ok <- vapply(images, is_sd_image, logical(1))
  if (!all(ok)) {
    abort_input("Every element of an {.cls sd_images} must be an {.cls sd_image}.")
  }
  structure(unname(images), class = "sd_images")
}

#' @rdname new_sd_image
#' @export
is_sd_image <- function(x) inherits(x, "sd_image")

# For arguments that take one image: an sd_images holding one is that image
# (`imgs[1]` where `imgs[[1]]` was meant); a longer one is an error.
one_image <- function(x, arg = caller_arg(x), call = caller_env()) {
  if (!inherits(x, "sd_images")) {
    return(x)
  }
  if (length(x) != 1) {
    abort_input(
      c("{.arg {arg}} must be one image, not an {.cls sd_images} of {length(x)}.",
        i = "Pick one with {.code [[ ]]}, e.g. {.code imgs[[1]]}."),
      call = call
    )
  }
  x[[1]]
}

# A path argument that may also be given as an image object (its file).
image_path <- function(x, arg = caller_arg(x), call = caller_env()) {
  force(arg)  # before `x` is reassigned: caller_arg() reads it lazily
  x <- one_image(x, arg = arg, call = call)
  # A sweep stands for its grid.
  if (is_sd_image(x) || inherits(x, "sd_sweep")) {
    return(x$path)
  }
  check_string(x, arg = arg, call = call)
  x
}

#' @export
`[.sd_images` <- function(x, i) {
  if (missing(i)) return(x)
  idx <- seq_along(x)[i]
  if (anyNA(idx)) {
    abort_input("Can't subset an {.cls sd_images} of length {length(x)}: an index is out of range or {.val {NA}}.")
  }
  new_sd_images(unclass(x)[idx])
}

#' @export
`[[.sd_images` <- function(x, i) {
  if (!is.numeric(i) || length(i) != 1 || is.na(i) || i < 1 || i > length(x) || i != trunc(i)) {
    abort_input(
      "Can't take image {.val {format(i)}} of an {.cls sd_images} of length {length(x)}: give a number from 1 to {length(x)}."
    )
  }
  unclass(x)[[i]]
}

#' @export
`$.sd_images` <- function(x, name) {
  abort_input(
    c("An {.cls sd_images} holds several images; it has no {.field {name}}.",
      i = "Take one image first, e.g. {.code imgs[[1]]${name}}, or see {.code as.data.frame(imgs)}.")
  )
}

#' @export
`[<-.sd_images` <- function(x, i, value) {
  if (is_sd_image(value)) value <- list(value)
  out <- unclass(x)
  out[i] <- if (inherits(value, "sd_images")) unclass(value) else value
  new_sd_images(out)
}

#' @export
`[[<-.sd_images` <- function(x, i, value) {
  out <- unclass(x)
  out[[i]] <- value
  new_sd_images(out)
}

#' @export
`$<-.sd_images` <- function(x, name, value) {
  abort_input("An {.cls sd_images} is a list of images; it has no {.field {name}} to set.")
}

#' @export
c.sd_image <- function(...) {
  combine_sd_images(list(...))
}

#' @export
c.sd_images <- function(...) {
  combine_sd_images(list(...))
}

#' @export
unique.sd_images <- function(x, incomparables = FALSE, ...) {
  new_sd_images(unique(unclass(x), incomparables = incomparables, ...))
}

combine_sd_images <- function(parts) {
  parts <- lapply(parts, function(p) {
    if (is_sd_image(p)) list(p) else if (inherits(p, "sd_images")) unclass(p) else {
      abort_input("Only {.cls sd_image} and {.cls sd_images} objects can be combined, not {.obj_type_friendly {p}}.",
                  call = rlang::caller_env(3))
    }
  })
  new_sd_images(do.call(c, parts))
}

# One line per image: prompt (truncated), size, seed, model, file.
sd_image_line <- function(x, width = getOption("width", 80)) {
  m <- x$meta
  one <- function(v) length(v) == 1 && !is.na(v)
  size <- if (one(m$width) && one(m$height)) paste0(m$width, "x", m$height) else "?x?"
  seed <- if (one(m$seed) && (is.numeric(m$seed) || is.character(m$seed))) format_seed(m$seed) else "?"
  prompt <- m[["prompt"]]
  if (!rlang::is_string(prompt) || is.na(prompt)) prompt <- "?"
  model <- m[["model"]]
  if (!rlang::is_string(model) || is.na(model)) model <- "?"
  prompt <- gsub("[\r\n]+", " ", prompt)
  # By display width: a CJK character takes two columns.
  max_prompt <- max(12L, width - 50L)
  if (nchar(prompt, type = "width") > max_prompt) {
    keep <- cumsum(nchar(strsplit(prompt, "")[[1]], type = "width")) <= max_prompt - 3
    prompt <- paste0(substr(prompt, 1, sum(keep)), "...")
  }
  sprintf("%s | %s | seed %s | %s | %s", encodeString(prompt, quote = '"'), size, seed,
          model, basename(x$path))
}

format_seed <- function(seed) {
  if (is.character(seed)) seed else sprintf("%.0f", seed)
}

#' @export
format.sd_image <- function(x, ...) {
  paste0("<sd_image> ", sd_image_line(x))
}

#' @export
print.sd_image <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  cat("  ", x$path, "\n", sep = "")
  invisible(x)
}

#' @export
format.sd_images <- function(x, ...) {
  n <- length(x)
  header <- sprintf("<sd_images> %d image%s", n, if (n == 1) "" else "s")
  lines <- vapply(unclass(x), sd_image_line, character(1))
  c(header, if (n) sprintf("[%d] %s", seq_len(n), lines))
}

#' @export
print.sd_images <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

#' A table of generated images
#'
#' One row per image with its file and the settings most often compared:
#' handy to list what a script made, or to show in a report.
#'
#' @param x An `sd_image` or `sd_images`.
#' @param row.names,optional Ignored (there for the generic).
#' @param ... Ignored.
#' @returns A data frame with columns `path`, `task`, `prompt`,
#'   `negative_prompt`, `seed`, `steps`, `guidance_scale`, `strength`,
#'   `width`, `height`, `scheduler` and `model`; `NA` where an image's
#'   metadata lacks the entry. `seed` is a double, or a character column when
#'   a seed is above 2^53 (see [sd_generate()]).
#' @family images
#' @export
#' @examplesIf rdiffusers::sd_available()
#' imgs <- sd_generate("a lighthouse", n = 2, steps = 2, width = 64, height = 64)
#' as.data.frame(imgs)
as.data.frame.sd_images <- function(x, row.names = NULL, optional = FALSE, ...) {
  imgs <- unclass(x)
  entry <- function(name, missing, as) {
    vapply(imgs, function(img) {
      v <- img$meta[[name]]
      if (length(v) == 1 && !is.list(v)) as(v) else missing
    }, missing)
  }
  seeds <- lapply(imgs, function(img) img$meta$seed)
  seed <- if (any(vapply(seeds, is.character, logical(1)))) {
    vapply(seeds, function(s) if (length(s) == 1) format_seed(s) else NA_character_, "")
  } else {
    vapply(seeds, function(s) if (length(s) == 1) as.double(s) else NA_real_, 0)
  }
  data.frame(
    path = vapply(imgs, function(img) img$path, ""),
    task = entry("task", NA_character_, as.character),
    prompt = entry("prompt", NA_character_, as.character),
    negative_prompt = entry("negative_prompt", NA_character_, as.character),
    seed = seed,
    steps = entry("steps", NA_integer_, as.integer),
    guidance_scale = entry("guidance_scale", NA_real_, as.double),
    strength = entry("strength", NA_real_, as.double),
    width = entry("width", NA_integer_, as.integer),
    height = entry("height", NA_integer_, as.integer),
    scheduler = entry("scheduler", NA_character_, as.character),
    model = entry("model", NA_character_, as.character),
    stringsAsFactors = FALSE
  )
}

#' @rdname as.data.frame.sd_images
#' @export
as.data.frame.sd_image <- function(x, row.names = NULL, optional = FALSE, ...) {
  as.data.frame(new_sd_images(list(x)))
}
