#' Transform an image, or repaint part of it
#'
#' `sd_img2img()` starts from an existing image instead of noise and redraws
#' it following `prompt`; `strength` says how much may change. `sd_inpaint()`
#' redraws only where `mask` is white and, by default, keeps every other pixel
#' of the input exactly.
#'
#' Both take the same generation arguments as [sd_generate()], write PNG files
#' with the full settings in their metadata (including the sha256 of the input
#' image and mask pixels), and reuse the model already loaded for
#' [sd_generate()]: switching tasks shares the loaded components, nothing is
#' loaded twice.
#'
#' @section Input images:
#' `image` and `mask` can be
#' * the path of a PNG or JPEG file (other formats need the magick package);
#' * an `sd_image` (from [sd_generate()] and friends), or an `sd_sweep` (its grid);
#' * a `magick-image` (its first frame);
#' * a raster ([as.raster()]);
#' * a numeric array, height x width x 3 (RGB) or 4 (RGBA), or a
#'   height x width matrix (grey). Values are read as 0--1 when all of them
#'   are within \[0, 1\] and the array is not of integer type, otherwise as
#'   0--255 (so an integer array of only 0s and 1s is nearly black, and
#'   warns);
#' * for `mask` also a logical matrix (`TRUE` = repaint).
#'
#' Transparent pixels of `image` are put on white; a `mask`'s transparency
#' is ignored, only its grey level counts (a mask painted on a transparent
#' layer keeps what is not painted). A JPEG is used upright, as image
#' viewers show it: its EXIF orientation (a phone photo taken sideways) is
#' applied, so its width and height are the upright ones. Every form reaches
#' Python as a PNG or JPEG file, so no pixel array crosses the R/Python bridge.
#'
#' @section Size:
#' `width` and `height` default to the size of `image` rounded down to a
#' multiple of 8 (e.g. 500 x 333 becomes 496 x 328), or of 16 for SD3 models
#' whose transformer works on 2 x 2 patches (496 x 320). The input is resized
#' (not cropped) to `width` x `height` before generation, so give an image
#' whose sides are such multiples to keep its pixels untouched. For
#' `sd_inpaint()` the mask must have the same size as `image`; a different size
#' is an error.
#'
#' @section Masks:
#' White (or `TRUE`) marks what to repaint, black what to keep; grey values
#' blend. With `keep_unmasked = TRUE` (the default, as AUTOMATIC1111 does) the
#' input's pixels are pasted back wherever the mask is black, so an edit never
#' degrades the rest of the picture: output = input x (1 - mask) + generated x
#' mask.
#'
#' @inheritParams sd_generate
#' @inheritSection sd_generate Interrupting
#' @param image The input image; see "Input images".
#' @param mask For `sd_inpaint()`: where to repaint, in the same forms as
#'   `image`; see "Masks".
#' @param prompt Character vector: what the result should show, one image set
#'   per element.
#' @param strength How much of the image may change, a number in (0, 1]: near
#'   0 keeps the input, 1 redraws it entirely. With `steps` steps, about
#'   `steps * strength` denoising steps run. `NULL`: for `sd_img2img()` the
#'   preset's `strength` (see [sd_presets()]) or 0.75; for `sd_inpaint()` 1.
#' @param width,height Output size in pixels, multiples of 8 (16 for SD3
#'   models with 2 x 2 patches). `NULL` uses the size of `image` rounded down
#'   to such a multiple; see "Size".
#' @returns An `sd_image` when one image was made, otherwise an `sd_images`.
#'   Its metadata has `task` (`"img2img"` or `"inpaint"`), `strength`,
#'   `init_image_sha256` and, for inpainting, `mask_sha256` and
#'   `keep_unmasked`.
#' @family generation
#' @export
#' @examplesIf rdiffusers::sd_available()
#' img <- sd_generate("a lighthouse", model = "tiny", steps = 2,
#'                    width = 64, height = 64, seed = 1)
#' sd_img2img(img, "a lighthouse at night", strength = 0.6, steps = 4, seed = 2)
#'
#' # Repaint the left half only
#' mask <- matrix(FALSE, 64, 64)
#' mask[, 1:32] <- TRUE
#' sd_inpaint(img, mask, "a red lighthouse", steps = 2, seed = 3)
sd_img2img <- function(image, prompt, strength = NULL, negative_prompt = NULL,
                       model = sd_default_model(), width = NULL, height = NULL,
                       steps = NULL, guidance_scale = NULL, seed = NULL, n = 1,
                       scheduler = NULL, output_dir = sd_output_dir(), ...,
                       progress = NULL) {
  load_args <- check_dots_load(...)
  strength <- check_strength(strength)
  tmp_dir <- new_image_dir()
  on.exit(remove_path(tmp_dir, recursive = TRUE), add = TRUE)
  input <- as_image_file(image, tmp_dir, what = "image")
  check_input_size(input, width, height)
  sd_run(
    task = "img2img", prompt = prompt, negative_prompt = negative_prompt,
    model = model, width = width, height = height, steps = steps,
    guidance_scale = guidance_scale, seed = seed, n = n, scheduler = scheduler,
    output_dir = output_dir, load_args = load_args, progress = progress,
    image = input$path,
    strength = strength %||% preset_strength(model, "img2img"),
    call = environment()
  )
}

#' @rdname sd_img2img
#' @param keep_unmasked For `sd_inpaint()`: `TRUE` to paste the input's
#'   pixels back outside the mask (exactly unchanged there), `FALSE` to keep
#'   what the model drew everywhere.
#' @export
sd_inpaint <- function(image, mask, prompt, strength = NULL, keep_unmasked = TRUE,
                       negative_prompt = NULL, model = sd_default_model(),
                       width = NULL, height = NULL, steps = NULL,
                       guidance_scale = NULL, seed = NULL, n = 1, scheduler = NULL,
                       output_dir = sd_output_dir(), ..., progress = NULL) {
  load_args <- check_dots_load(...)
  strength <- check_strength(strength)
  check_flag(keep_unmasked)
  tmp_dir <- new_image_dir()
  on.exit(remove_path(tmp_dir, recursive = TRUE), add = TRUE)
  input <- as_image_file(image, tmp_dir, what = "image")
  mask_file <- as_image_file(mask, tmp_dir, what = "mask")
  if (!identical(c(input$width, input$height), c(mask_file$width, mask_file$height))) {
    abort_input(c(
      "{.arg mask} must have the same size as {.arg image}.",
      x = "{.arg image} is {input$width} x {input$height}, {.arg mask} is {mask_file$width} x {mask_file$height} (width x height)."
    ))
  }
  check_input_size(input, width, height)
  sd_run(
    task = "inpaint", prompt = prompt, negative_prompt = negative_prompt,
    model = model, width = width, height = height, steps = steps,
    guidance_scale = guidance_scale, seed = seed, n = n, scheduler = scheduler,
    output_dir = output_dir, load_args = load_args, progress = progress,
    image = input$path, mask = mask_file$path,
    strength = strength %||% preset_strength(model, "inpaint"),
    keep_unmasked = keep_unmasked,
    call = environment()
  )
}

# A private temporary directory for the converted inputs of one call; the
# caller removes it on exit.
new_image_dir <- function() {
  dir <- tempfile("rdiffusers-input-")
  dir.create(dir)
  dir
}

check_strength <- function(strength, arg = caller_arg(strength), call = caller_env()) {
  force(arg)
  strength <- check_number(strength, allow_null = TRUE, arg = arg, call = call)
  if (!is.null(strength) && (strength <= 0 || strength > 1)) {
    abort_input(
      c("{.arg {arg}} must be in (0, 1], not {format(strength)}.",
        i = "0 would leave the image unchanged; 1 redraws it entirely."),
      call = call
    )
  }
  strength
}

# The preset's strength when the model is a preset that has one, else NULL
# (Python then uses 0.75 for img2img and 1 for inpaint).
preset_strength <- function(model, task) {
  if (!is.character(model) || length(model) != 1 || is.na(model)) {
    return(NULL)
  }
  presets <- tryCatch(presets_list(), error = function(e) NULL)
  s <- presets[[model]]$strength
  if (is.null(s) || identical(task, "inpaint")) NULL else as.double(s)
}

# A width or height left NULL is the image's, rounded down in Python to a
# multiple the model takes (8, or 16 for SD3 with 2 x 2 patches). Too large
# a side is then blamed on the image; a given size is checked as an argument.
check_input_size <- function(input, width, height, call = caller_env()) {
  too_large <- function(side, given) is.null(given) && side %/% 8 * 8 > 16384
  if (too_large(input$width, width) || too_large(input$height, height)) {
    abort_input(
      c("{.arg image} is {input$width} x {input$height} pixels; a side above 16384 needs a smaller {.arg width} or {.arg height}.",
        i = "The image is resized to {.arg width} x {.arg height}."),
      call = call
    )
  }
  invisible()
}

# Input images -----------------------------------------------------------

# Turns any supported image form into list(path, width, height): a PNG or
# JPEG file that Python reads. Files already in PNG/JPEG are used in place.
as_image_file <- function(x, dir, what = "image", arg = what, call = caller_env()) {
  x <- one_image(x, arg = arg, call = call)
  if (is_sd_image(x) || inherits(x, "sd_sweep")) {
    x <- x$path
  }
  if (inherits(x, "magick-image")) {
    return(magick_to_png(x, dir, what, arg = arg, call = call))
  }
  if (inherits(x, "nativeRaster")) {
    # Packed colours (png::readPNG(native = TRUE)); writePNG() takes them as they are.
    path <- tempfile(paste0(what, "-"), tmpdir = dir, fileext = ".png")
    png::writePNG(x, path)
    return(list(path = path, width = as.integer(ncol(x)), height = as.integer(nrow(x))))
  }
  # Before is.character(): a raster is a character matrix of colours.
  if (inherits(x, "raster")) {
    x <- raster_to_array(x)
  }
  if (is.character(x)) {
    return(image_file_info(x, dir, what, arg = arg, call = call))
  }
  if (is.logical(x) && is.matrix(x) && identical(what, "mask")) {
    if (anyNA(x)) {
      abort_input("{.arg {arg}} must not contain {.val {NA}}.", call = call)
    }
    storage.mode(x) <- "double"
  }
  if (is.numeric(x) && (is.matrix(x) || (is.array(x) && length(dim(x)) == 3))) {
    return(array_to_png(x, dir, what, arg = arg, call = call))
  }
  abort_input(
    c("{.arg {arg}} must be an image: a PNG or JPEG file path, an {.cls sd_image}, a {.cls magick-image}, a raster, or a numeric array (height x width x 3), not {.obj_type_friendly {x}}.",
      i = if (identical(what, "mask")) "A mask can also be a logical matrix ({.code TRUE} = repaint)."),
    call = call
  )
}

image_file_info <- function(path, dir, what, arg, call) {
  if (length(path) != 1 || is.na(path) || !nzchar(path)) {
    abort_input("{.arg {arg}} must be a single file path, not {.obj_type_friendly {path}}.",
                call = call)
  }
  check_file_exists(path, sprintf("{.arg %s} file", arg),
                    class = c("rdiffusers_error_input", "rdiffusers_error_file"), call = call)
  path <- normalizePath(path, winslash = "/", mustWork = TRUE)
  size <- image_file_size(path)
  if (!is.null(size)) {
    return(list(path = path, width = size[[1]], height = size[[2]]))
  }
  has_magick <- requireNamespace("magick", quietly = TRUE)
  if (has_magick) {
    img <- tryCatch(magick::image_read(path), error = function(e) NULL)
    if (!is.null(img)) {
      return(magick_to_png(img, dir, what, arg = arg, call = call))
    }
  }
  abort_input(
    c("{.arg {arg}} {.file {path}} is not a PNG or JPEG image.",
      i = if (has_magick) "The {.pkg magick} package cannot read it either."
          else "Other formats are read with the {.pkg magick} package when it is installed."),
    call = call
  )
}

# c(width, height) from a PNG or JPEG header, or NULL for other files.
image_file_size <- function(path) {
  con <- file(path, "rb")
  on.exit(close(con))
  head <- readBin(con, "raw", 26)
  png_sig <- as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a))
  if (length(head) >= 24 && identical(head[1:8], png_sig)) {
    return(c(be_int(head[17:20]), be_int(head[21:24])))
  }
  if (length(head) >= 2 && identical(head[1:2], as.raw(c(0xff, 0xd8)))) {
    seek(con, 2)
    return(jpeg_size(con))
  }
  NULL
}

# Big-endian unsigned: an integer, or a double past R's integers (a PNG
# header may claim a side of up to 2^32 - 1).
be_int <- function(bytes) {
  v <- sum(as.integer(bytes) * 256^(rev(seq_along(bytes)) - 1))
  if (v <= .Machine$integer.max) as.integer(v) else v
}

# The orientation tag (0x0112) of IFD0 in an APP1 "Exif" segment body, or NA.
exif_orientation <- function(body) {
  if (length(body) < 14 || !identical(body[1:6], as.raw(c(0x45, 0x78, 0x69, 0x66, 0, 0)))) {
    return(NA_integer_)
  }
  tiff <- body[-(1:6)]
  little <- identical(tiff[1:2], charToRaw("II"))
  if (!little && !identical(tiff[1:2], charToRaw("MM"))) return(NA_integer_)
  int <- function(at, n) {
    if (at + n - 1 > length(tiff)) return(NA_integer_)
    b <- tiff[at:(at + n - 1)]
    be_int(if (little) rev(b) else b)
  }
  ifd <- int(5, 4)
  count <- if (is.na(ifd)) NA_integer_ else int(ifd + 1, 2)
  if (is.na(count)) return(NA_integer_)
  for (i in seq_len(count)) {
    entry <- ifd + 3 + (i - 1) * 12
    tag <- int(entry, 2)
    if (is.na(tag)) return(NA_integer_)
    if (tag == 0x0112) return(int(entry + 8, 2))
  }
  NA_integer_
}

# Walks the JPEG segments to the first start-of-frame marker (SOF0..SOF15,
# except DHT C4, JPG C8 and DAC CC), which holds height then width. An EXIF
# orientation of 5-8 (a phone photo taken sideways) swaps them: the image is
# used upright, as viewers show it.
jpeg_size <- function(con) {
  rotated <- FALSE
  repeat {
    marker <- readBin(con, "raw", 2)
    if (length(marker) < 2 || marker[1] != as.raw(0xff)) return(NULL)
    code <- as.integer(marker[2])
    if (code == 0xff) {
      seek(con, -1, origin = "current")
      next
    }
    if (code %in% c(0xd8, 0x01) || (code >= 0xd0 && code <= 0xd7)) next
    len <- readBin(con, "raw", 2)
    if (length(len) < 2) return(NULL)
    seglen <- be_int(len)
    if (code >= 0xc0 && code <= 0xcf && !code %in% c(0xc4, 0xc8, 0xcc)) {
      body <- readBin(con, "raw", 5)
      if (length(body) < 5) return(NULL)
      size <- c(be_int(body[4:5]), be_int(body[2:3]))
      return(if (rotated) rev(size) else size)
    }
    if (code == 0xe1 && seglen > 2) {
      body <- readBin(con, "raw", seglen - 2)
      rotated <- rotated || exif_orientation(body) %in% 5:8
      next
    }
    seek(con, seglen - 2, origin = "current")
  }
}

magick_to_png <- function(img, dir, what, arg, call) {
  if (!requireNamespace("magick", quietly = TRUE)) {
    abort_input("Reading {.arg {arg}} needs the {.pkg magick} package.", call = call)
  }
  img <- img[1]
  path <- tempfile(paste0(what, "-"), tmpdir = dir, fileext = ".png")
  magick::image_write(img, path, format = "png")
  info <- magick::image_info(img)
  list(path = path, width = as.integer(info$width), height = as.integer(info$height))
}

# A raster (matrix of colour strings, rows = image rows) as a 0-1 array.
raster_to_array <- function(x) {
  x <- as.raster(x)
  rgba <- grDevices::col2rgb(as.vector(t(as.matrix(x))), alpha = TRUE) / 255
  h <- nrow(x)
  w <- ncol(x)
  arr <- array(0, c(h, w, 4))
  for (k in 1:4) arr[, , k] <- matrix(rgba[k, ], nrow = h, ncol = w, byrow = TRUE)
  if (all(arr[, , 4] == 1)) arr <- arr[, , 1:3, drop = FALSE]
  arr
}

array_to_png <- function(x, dir, what, arg, call) {
  d <- dim(x)
  if (length(d) == 3 && !d[3] %in% c(1L, 3L, 4L)) {
    abort_input(
      "{.arg {arg}} must be height x width x 3 (RGB) or 4 (RGBA), not {paste(d, collapse = ' x ')}.",
      call = call
    )
  }
  if (any(d[1:2] < 1)) {
    abort_input("{.arg {arg}} has no pixels.", call = call)
  }
  if (anyNA(x) || any(!is.finite(x))) {
    abort_input("{.arg {arg}} must not contain {.val {NA}}, {.val {NaN}} or infinite values.",
                call = call)
  }
  rng <- range(x)
  if (rng[1] < 0 || rng[2] > 255) {
    abort_input("{.arg {arg}} values must be within 0-1 or 0-255, not {format(rng[1])} to {format(rng[2])}.",
                call = call)
  }
  if (is.integer(x) && rng[2] == 1) {
    # A 0/1 mask made with `m * 1L` reads as black and near-black: keep all.
    cli::cli_warn(
      c("{.arg {arg}} is an integer array of 0s and 1s, read as 0-255: nearly black.",
        i = "For 0-1 values use doubles or, for a mask, {.code TRUE}/{.code FALSE}."),
      class = "rdiffusers_warning", call = call
    )
  }
  # Documented rule: integer storage, or any value above 1, means 0-255.
  if (is.integer(x) || rng[2] > 1) {
    x <- x / 255
  }
  x <- array(as.double(x), d)
  path <- tempfile(paste0(what, "-"), tmpdir = dir, fileext = ".png")
  png::writePNG(x, path)
  list(path = path, width = as.integer(d[2]), height = as.integer(d[1]))
}
