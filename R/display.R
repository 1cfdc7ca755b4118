# Showing images: plot(), as.raster(), as.array(), magick, knitr --------
#
# Everything here reads the PNG file (pure R, png package): it never needs
# Python, so a saved image can be shown in a session without torch.

image_file <- function(x, call = caller_env()) {
  path <- x$path
  if (!is.character(path) || length(path) != 1 || is.na(path) || !file.exists(path)) {
    sd_abort(
      c(
        "The image file of this {.cls {class(x)[[1]]}} does not exist.",
        i = if (is.character(path) && length(path) == 1) "Path: {.file {path}}"
      ),
      class = "rdiffusers_error_file",
      call = call
    )
  }
  path
}

read_png_array <- function(path, alpha = FALSE, call = caller_env()) {
  force(path)
  img <- tryCatch(
    png::readPNG(path),
    error = function(e) {
      sd_abort("Can't read {.file {path}} as a PNG.", class = "rdiffusers_error_file",
               parent = e, call = call)
    }
  )
  # Grey images come back as a matrix; give every image three channels
  # (four with `alpha`, 1 where the file has none) so callers can rely on
  # H x W x 3 (x 4).
  if (length(dim(img)) == 2) img <- array(img, c(dim(img), 1))
  channels <- dim(img)[[3]]
  rgb <- if (channels <= 2) c(1, 1, 1) else 1:3
  out <- img[, , rgb, drop = FALSE]
  if (alpha) {
    a <- if (channels %in% c(2, 4)) img[, , channels] else rep(1, prod(dim(img)[1:2]))
    out <- array(c(out, a), c(dim(out)[1:2], 4))
  }
  out
}

#' Convert a generated image to a raster or an array
#'
#' `as.raster()` gives a [grDevices::as.raster()] colour matrix (height x
#' width) for base and grid graphics; `as.array()` the pixel values as a
#' height x width x 3 array of doubles in `[0, 1]` (red, green, blue), as
#' [png::readPNG()] reads them. Both read the image's PNG file, so they work
#' without Python.
#'
#' @param x An `sd_image`, or an `sd_images` holding one image (`imgs[2]`;
#'   more than one is an error: pick one with `imgs[[i]]`).
#' @param ... Unused.
#' @returns `as.raster()`: a `raster` object; `as.array()`: a numeric array
#'   with dimensions `c(height, width, 3)`.
#' @family display
#' @examplesIf rdiffusers::sd_available()
#' img <- sd_generate("a lighthouse at dusk", model = "tiny", seed = 1)
#' dim(as.array(img))
#' r <- as.raster(img)
#' @name sd_image-convert
NULL

#' @rdname sd_image-convert
#' @export
as.raster.sd_image <- function(x, ...) {
  grDevices::as.raster(read_png_array(image_file(x)))
}

#' @rdname sd_image-convert
#' @export
as.array.sd_image <- function(x, ...) {
  read_png_array(image_file(x))
}

#' @rdname sd_image-convert
#' @export
as.raster.sd_images <- function(x, ...) {
  as.raster(one_image(x))
}

#' @rdname sd_image-convert
#' @export
as.array.sd_images <- function(x, ...) {
  as.array(one_image(x))
}

#' Plot generated images
#'
#' Draws one image, or a grid of several, on the current graphics device
#' with base graphics, so it shows in the RStudio or Positron plot pane, a
#' `png()` file, or an R Markdown chunk. Pixels are drawn without
#' interpolation and the aspect ratio is kept.
#'
#' @param x An `sd_image` or `sd_images`.
#' @param main An optional title.
#' @param labels For `sd_images`: a label under each image. `NULL` (the
#'   default) labels each image with its seed; `FALSE` draws no labels.
#' @param ncol For `sd_images`: number of columns (default: a near-square
#'   grid).
#' @param interpolate Smooth the pixels when the image is scaled?
#' @param ... Unused.
#' @returns `x`, invisibly.
#' @family display
#' @examplesIf rdiffusers::sd_available()
#' imgs <- sd_generate("a lighthouse at dusk", model = "tiny", n = 4, seed = 1)
#' plot(imgs[[1]])
#' plot(imgs, ncol = 2)
#' @export
plot.sd_image <- function(x, main = NULL, interpolate = FALSE, ...) {
  draw_image_grid(list(read_png_array(image_file(x))), ncol = 1,
                  main = main, interpolate = interpolate)
  invisible(x)
}

#' @rdname plot.sd_image
#' @export
plot.sd_images <- function(x, main = NULL, labels = NULL, ncol = NULL,
                           interpolate = FALSE, ...) {
  images <- unclass(x)
  n <- length(images)
  if (n == 0) {
    abort_input("There are no images to plot.")
  }
  ncol <- ncol %||% ceiling(sqrt(n))
  if (!is.numeric(ncol) || length(ncol) != 1 || !is.finite(ncol) || ncol < 1 ||
      ncol != trunc(ncol)) {
    abort_input("{.arg ncol} must be a positive whole number.")
  }
  if (is.null(labels)) {
    labels <- vapply(images, function(img) {
      seed <- img$meta$seed
      if (is.null(seed)) "" else paste("seed", format_seed(seed))
    }, character(1))
  } else if (isFALSE(labels)) {
    labels <- NULL
  } else if (!is.character(labels) || length(labels) != n) {
    abort_input("{.arg labels} must be a character vector with one label per image ({n}).")
  }
  call <- environment()
  arrays <- lapply(images, function(img) read_png_array(image_file(img, call = call)))
  draw_image_grid(arrays, ncol = min(as.integer(ncol), n), labels = labels,
                  main = main, interpolate = interpolate)
  invisible(x)
}

# Layout of an image grid in pixel units: cells as large as the largest
# image, a gap between cells, room for labels under the images, column
# labels and a title above, row labels (rotated) on the left.
grid_geometry <- function(arrays, ncol, labels = NULL, row_labels = NULL,
                          col_labels = NULL, main = NULL, dims = lapply(arrays, dim)) {
  n <- length(dims)
  g <- list(n = n, ncol = ncol, nrow = ceiling(n / ncol))
  g$cw <- max(vapply(dims, function(d) d[[2]], numeric(1)))
  g$ch <- max(vapply(dims, function(d) d[[1]], numeric(1)))
  g$gap <- if (n > 1) 0.04 * g$cw else 0
  g$lab_h <- if (length(labels)) 0.14 * g$ch else 0
  g$title_h <- if (length(main)) 0.16 * g$ch else 0
  g$top <- g$title_h + if (length(col_labels)) 0.14 * g$ch else 0
  g$left <- if (length(row_labels)) 0.16 * g$cw else 0
  g$width <- g$left + ncol * g$cw + (ncol - 1) * g$gap
  g$height <- g$top + g$nrow * (g$ch + g$lab_h) + (g$nrow - 1) * g$gap
  g
}

# Draws images (H x W x 3 arrays) in a grid on the current device, in pixel
# coordinates with aspect ratio 1 so no image is stretched. Used by plot()
# and by sd_sweep() for its labelled grid.
draw_image_grid <- function(arrays, ncol, labels = NULL, row_labels = NULL,
                            col_labels = NULL, main = NULL,
                            interpolate = FALSE, cex = 0.8) {
  g <- grid_geometry(arrays, ncol, labels, row_labels, col_labels, main)
  old <- graphics::par(mar = c(0, 0, 0, 0))
  on.exit(graphics::par(old), add = TRUE)
  graphics::plot.new()
  graphics::plot.window(xlim = c(0, g$width), ylim = c(0, g$height), asp = 1,
                        xaxs = "i", yaxs = "i")
  cell_top <- function(r) g$height - g$top - (r - 1) * (g$ch + g$lab_h + g$gap)
  cell_left <- function(k) g$left + (k - 1) * (g$cw + g$gap)
  for (i in seq_len(g$n)) {
    a <- arrays[[i]]
    x0 <- cell_left((i - 1) %% ncol + 1)
    y1 <- cell_top((i - 1) %/% ncol + 1)
    # Centre images smaller than the cell.
    dx <- (g$cw - dim(a)[[2]]) / 2
    dy <- (g$ch - dim(a)[[1]]) / 2
    graphics::rasterImage(grDevices::as.raster(a), x0 + dx, y1 - g$ch + dy,
                          x0 + dx + dim(a)[[2]], y1 - dy,
                          interpolate = interpolate)
    if (length(labels)) {
      graphics::text(x0 + g$cw / 2, y1 - g$ch - g$lab_h / 2, labels[[i]], cex = cex)
    }
  }
  for (k in seq_along(col_labels)) {
    graphics::text(cell_left(k) + g$cw / 2, g$height - g$title_h - (g$top - g$title_h) / 2,
                   col_labels[[k]], cex = cex, font = 2)
  }
  for (r in seq_along(row_labels)) {
    graphics::text(g$left / 2, cell_top(r) - g$ch / 2, row_labels[[r]],
                   cex = cex, font = 2, srt = 90)
  }
  if (length(main)) {
    graphics::text(g$width / 2, g$height - g$title_h / 2, main, cex = cex * 1.25, font = 2)
  }
  invisible(g)
}

#' Convert generated images to magick images
#'
#' Reads the PNG files with [magick::image_read()], for editing, compositing
#' or animating with 'magick'. Requires the 'magick' package.
#'
#' @param x An `sd_image`, `sd_images` or `sd_sweep` (its grid).
#' @param ... Unused.
#' @returns A `magick-image` (several frames for `sd_images`).
#' @family display
#' @examplesIf rdiffusers::sd_available() && rlang::is_installed("magick")
#' imgs <- sd_generate("a lighthouse at dusk", model = "tiny", n = 2, seed = 1)
#' m <- as_magick(imgs)
#' magick::image_append(m)
#' @export
as_magick <- function(x, ...) {
  UseMethod("as_magick")
}

#' @export
as_magick.sd_image <- function(x, ...) {
  rlang::check_installed("magick", reason = "to convert images to magick images.")
  magick::image_read(image_file(x))
}

#' @export
as_magick.sd_images <- function(x, ...) {
  rlang::check_installed("magick", reason = "to convert images to magick images.")
  paths <- vapply(unclass(x), image_file, character(1), call = environment())
  magick::image_read(paths)
}

#' @export
as_magick.sd_sweep <- function(x, ...) {
  rlang::check_installed("magick", reason = "to convert images to magick images.")
  magick::image_read(image_file(x))
}

#' @export
as_magick.default <- function(x, ...) {
  abort_input("{.fn as_magick} needs an {.cls sd_image}, {.cls sd_images} or {.cls sd_sweep}, not {.obj_type_friendly {x}}.")
}

#' Show generated images in R Markdown and Quarto
#'
#' When a chunk's value is an `sd_image` or `sd_images`, knitr shows the
#' image(s) inline, as [knitr::include_graphics()] shows image files: the
#' PNG is copied into the chunk's figure directory (so the document does not
#' point into a temporary folder) and included at its own size (in HTML
#' its width in pixels, whatever `fig.retina` says) with the
#' chunk's figure options (`out.width`, `fig.cap`, `fig.alt` (one per image
#' or one for all), `fig.align`, `fig.show`, ...).
#'
#' @param x An `sd_image` or `sd_images`.
#' @param options Chunk options, from knitr.
#' @param ... Unused.
#' @returns What [knitr::include_graphics()] returns.
#' @family display
#' @keywords internal
#' @exportS3Method knitr::knit_print
knit_print.sd_image <- function(x, options = NULL, ...) {
  knit_images(list(x), options)
}

#' @rdname knit_print.sd_image
#' @exportS3Method knitr::knit_print
knit_print.sd_images <- function(x, options = NULL, ...) {
  knit_images(unclass(x), options)
}

knit_images <- function(images, options = NULL, call = caller_env()) {
  options <- options %||% knitr::opts_current$get()
  paths <- vapply(images, image_file, character(1), call = call, USE.NAMES = FALSE)
  paths <- vapply(paths, knit_copy_figure, character(1), options = options, USE.NAMES = FALSE)
  # As knitr::include_graphics() images: knitr places them once the chunk
  # has run, with its options evaluated (fig.cap = paste(...), one fig.alt
  # per image) and fig.show honoured, at their own size unless out.width
  # says otherwise (not stretched to the width of a plot). In HTML their
  # width is not computed from `dpi`: with html_document's fig.retina = 2
  # that would show a 512-pixel image 256 pixels wide.
  knitr::include_graphics(paths, error = FALSE,
                          dpi = if (isTRUE(knitr::is_html_output())) NA)
}

# Copies an image next to the document's other figures, so the output does
# not refer to a file in tempdir(). Falls back to the original path outside
# a knitting chunk (no figure path or label to name it by). The copy is named
# by the image's content: every image printed in a chunk, by one
# knit_print() or several, gets its own file.
knit_copy_figure <- function(path, options) {
  if (is.null(options$fig.path) || is.null(options$label)) {
    return(path)
  }
  dest <- tryCatch(
    knitr::fig_path(".png", options, number = paste0("sd-", substr(tools::md5sum(path), 1, 12))),
    error = function(e) NULL
  )
  if (is.null(dest)) {
    return(path)
  }
  dir.create(dirname(dest), recursive = TRUE, showWarnings = FALSE)
  if (!file.copy(path, dest, overwrite = TRUE)) {
    return(path)
  }
  dest
}
