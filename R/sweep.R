# Parameter sweeps: every combination of seed x guidance x steps ---------

#' Generate every combination of seeds, guidance scales and steps
#'
#' The classic teaching grid: one prompt, rendered for every combination of
#' `seed`, `guidance_scale` and `steps`, arranged into one labelled grid
#' image. Columns vary the first of `guidance_scale`, `steps`, `seed` that
#' has several values; rows vary the others. The grid is saved as a PNG
#' whose metadata lists the axes and every cell (file, seed and settings;
#' the file relative to the grid's folder when it is inside it, else its
#' full path),
#' so `png_read_meta()` tells what each cell shows; each cell is an ordinary
#' generated PNG with its own metadata.
#'
#' Ctrl+C or an error stops the sweep without drawing the grid; the cells
#' made before the stop stay in `output_dir`, a message says how many, and
#' the `rdiffusers_interrupt` condition's `images` element holds them (see
#' "Interrupting" in [sd_generate()]).
#'
#' A setting left `NULL` takes the model's default (for `seed`: one random
#' seed, the same for every cell, so only the other settings vary).
#'
#' A sweep makes at most 10000 images, and its grid must fit in 32767
#' pixels on a side (the limit of R's png device). Both are checked before
#' the first cell, or, when `width` and `height` are not given, as soon as
#' the first cell shows the model's size.
#'
#' @param prompt One string: what to draw.
#' @param seed,guidance_scale,steps Vectors of values to combine, or `NULL`.
#' @param ... Further arguments for [sd_generate()] (e.g. `model`, `width`,
#'   `height`, `negative_prompt`, `scheduler`), the same for every cell.
#' @param output_dir Directory for the cell images and the grid.
#' @param file Path of the grid PNG; it must not exist yet. By default a new
#'   `sweep-*.png` file in `output_dir`.
#' @param progress Show progress over the cells: `NULL` (the option
#'   `rdiffusers.progress`, by default `TRUE` in interactive sessions except
#'   while knitting),
#'   `TRUE`/`FALSE`, or `"bar"`, `"summary"`, `"none"`.
#' @returns An `sd_sweep` object: a list with `path` (the grid PNG),
#'   `images` (the cells as `sd_images`, in grid order), `cells` (a data
#'   frame with one row per cell: `row`, `col`, `file` (the cell's full
#'   path), `seed` (a list
#'   column, as seeds above 2^53 are strings), `guidance_scale`, `steps`)
#'   and `meta` (what the grid's PNG holds). It
#'   has `print()`, `plot()` and `knit_print()` methods; `as.raster()` and
#'   `as.array()` give the grid's pixels, as for an `sd_image`, and
#'   `as.data.frame()` one row per cell: its grid `row` and `col`, then the
#'   columns of [as.data.frame.sd_images()] for its image.
#' @family generation
#' @export
#' @examplesIf rdiffusers::sd_available()
#' sw <- sd_sweep("a lighthouse at dusk", model = "tiny", seed = 1:2,
#'                guidance_scale = c(3, 7.5), steps = 2, width = 64, height = 64)
#' sw
#' plot(sw)
#' png_read_meta(sw$path)$cells[[1]]
sd_sweep <- function(prompt, seed = NULL, guidance_scale = NULL, steps = NULL,
                     ..., output_dir = sd_output_dir(), file = NULL,
                     progress = NULL) {
  check_sweep_prompt(prompt)
  seed <- int64_as_digits(seed)
  check_sweep_axis(seed)
  check_sweep_axis(guidance_scale)
  check_sweep_axis(steps)
  # Every value as sd_generate() would check it, before the first cell runs.
  seeds <- vapply(seed, check_seed, character(1), n_prompts = 1L, arg = "seed")
  if (anyDuplicated(seeds)) {
    abort_input("{.arg seed} has repeated values: {.val {seed[duplicated(seeds)]}} (the same seed as another).")
  }
  for (g in guidance_scale) check_number(g, arg = "guidance_scale")
  for (st in steps) check_whole(st, min = 1, arg = "steps")
  mode <- progress_mode(progress)
  dots <- list(...)
  if ("n" %in% names(dots)) {
    abort_input("{.fn sd_sweep} makes one image per combination; {.arg n} is not used.")
  }
  # What sd_generate() takes besides what sd_sweep() sets itself.
  own <- c("prompt", "seed", "guidance_scale", "steps", "n", "output_dir", "progress", "...")
  check_dots_names(dots, c(setdiff(names(formals(sd_generate)), own), dots_allowed))
  check_string(output_dir)
  check_string(file, allow_null = TRUE)
  if (!is.null(file)) check_file_target(file, arg = "file")
  if (!is.null(file) && path_taken(file)) {
    # Checked before generating anything: a sweep never replaces a file.
    sd_abort(c("{.file {file}} already exists.", i = "Choose another {.arg file}."),
             class = c("rdiffusers_error_exists", "rdiffusers_error_file"))
  }
  if (!is.null(file) && !dir.exists(dirname(file))) {
    sd_abort("The directory of {.arg file}, {.file {dirname(file)}}, does not exist.",
             class = "rdiffusers_error_file")
  }
  if (!is.null(file) && !dir_writable(dirname(file))) {
    sd_abort("Cannot write {.arg file} into {.file {dirname(file)}}.",
             class = "rdiffusers_error_file")
  }
  check_output_dir(output_dir)
  file <- file %||% sweep_file(output_dir)

  axes <- list(seed = seed, guidance_scale = guidance_scale, steps = steps)
  lens <- vapply(axes, function(a) max(1L, length(a)), integer(1))
  order <- c("guidance_scale", "steps", "seed")
  col_axis <- order[[match(TRUE, lens[order] > 1, nomatch = 1L)]]
  row_axes <- setdiff(c("seed", "steps", "guidance_scale"), col_axis)
  # Column varies fastest, then the second row axis, then the first.
  grid <- expand.grid(
    c = seq_len(lens[[col_axis]]),
    b = seq_len(lens[[row_axes[[2]]]]),
    a = seq_len(lens[[row_axes[[1]]]])
  )
  n <- nrow(grid)
  if (n > max_images) {
    abort_input(
      c("The sweep has {n} combinations; it makes at most {max_images} images.",
        i = "Use fewer values of {.arg seed}, {.arg guidance_scale} or {.arg steps}.")
    )
  }
  # The grid must fit R's png device; known from the cell size, which
  # `width`/`height` give, or else the first image does.
  check_grid <- function(width, height) {
    g <- grid_geometry(NULL, lens[[col_axis]], col_labels = "",
                       row_labels = if (any(lens[row_axes] > 1)) "",
                       dims = rep(list(c(height, width)), n))
    if (max(g$width, g$height) > grid_max_px) {
      abort_input(c(
        "The grid of {lens[[col_axis]]} x {n %/% lens[[col_axis]]} images of {width} x {height} pixels would be {ceiling(g$width)} x {ceiling(g$height)} pixels; R's png device draws at most {grid_max_px} on a side.",
        i = "Use fewer values or a smaller {.arg width} and {.arg height}."
      ), call = sweep_call)
    }
  }
  sweep_call <- environment()
  if (is.numeric(dots$width) && is.numeric(dots$height)) {
    check_grid(dots$width, dots$height)
  }

  if (identical(mode, "bar")) {
    # Like sd_generate()'s: shown at once (the first cell may load the
    # model), and a last line saying how it ended.
    bar <- cli::cli_progress_bar(
      "Sweep", total = n, clear = FALSE,
      format = "{cli::pb_spin} Sweep image {cli::pb_current}/{cli::pb_total} {cli::pb_bar} {cli::pb_percent} | ETA: {cli::pb_eta}",
      format_done = "{cli::col_green(cli::symbol$tick)} Sweep: {cli::pb_total} images in {cli::pb_elapsed}",
      format_failed = "{cli::col_red(cli::symbol$cross)} Sweep: stopped after {cli::pb_current} of {cli::pb_total} images"
    )
    cli::cli_progress_update(set = 0, id = bar, force = TRUE)
  }
  # Each cell is sd_generate(prompt, <its values>, <dots>): its arguments
  # and the load options, checked once here.
  generate_names <- setdiff(names(formals(sd_generate)), "...")
  generate_args <- dots[names(dots) %in% generate_names]
  load_args <- do.call(check_dots_load, dots[!names(dots) %in% generate_names])
  started <- Sys.time()
  images <- vector("list", n)
  done <- 0L
  # Stopped part-way (Ctrl+C or an error): the cells made so far stay in
  # output_dir, and an interrupt's condition carries them all.
  on.exit(if (done < n) note_saved(images[seq_len(done)], n, what = "sweep image"), add = TRUE)
  tryCatch(for (i in seq_len(n)) {
    idx <- c(grid$c[[i]], grid$b[[i]], grid$a[[i]])
    names(idx) <- c(col_axis, row_axes[[2]], row_axes[[1]])
    value <- function(axis) {
      a <- axes[[axis]]
      if (is.null(a)) NULL else a[[idx[[axis]]]]
    }
    img <- do.call(sd_run, c(
      list(task = "txt2img", prompt = prompt, seed = value("seed"),
           guidance_scale = value("guidance_scale"), steps = value("steps")),
      generate_args,
      # The first cell loads the model: it also checks the other step counts
      # against the model's scheduler (at most its training timesteps), so
      # a bad one stops the sweep before any image is made.
      list(output_dir = output_dir, progress = FALSE, load_args = load_args,
           also_steps = if (i == 1) steps)
    ))
    images[[i]] <- img
    done <- i
    if (i == 1) {
      # Checked now if the size was not given: before the other cells run.
      check_grid(img$meta$width, img$meta$height)
      # Settings left NULL take the first image's (a random seed, the
      # model's default guidance and steps), so every cell shares them.
      for (axis in names(axes)) {
        if (is.null(axes[[axis]])) axes[[axis]] <- list(img$meta[[axis]])
      }
    }
    if (identical(mode, "bar")) cli::cli_progress_update(id = bar)
  }, rdiffusers_interrupt = function(cnd) {
    if (identical(mode, "bar")) cli::cli_progress_done(id = bar, result = "failed")
    # A cell stopped after its image was saved carries it.
    images[done + seq_along(cnd$images)] <<- unclass(cnd$images)
    done <<- done + length(cnd$images)
    signal_sd_interrupt(cnd$parent, images = new_sd_images(images[seq_len(done)]))
  })
  images <- structure(images, class = "sd_images")
  if (identical(mode, "bar")) cli::cli_progress_done(id = bar)

  cells <- data.frame(
    row = (grid$a - 1L) * lens[[row_axes[[2]]]] + grid$b,
    col = grid$c,
    # Full paths: a bare name found no cell when the grid is elsewhere.
    file = vapply(images, function(img) img$path, character(1)),
    stringsAsFactors = FALSE
  )
  cells$seed <- lapply(images, function(img) img$meta$seed)
  cells$guidance_scale <- vapply(images, function(img) as.double(img$meta$guidance_scale %||% NA), double(1))
  cells$steps <- vapply(images, function(img) as.integer(img$meta$steps %||% NA), integer(1))

  col_labels <- vapply(seq_len(lens[[col_axis]]), function(k) {
    axis_label(col_axis, axes[[col_axis]][[k]])
  }, character(1))
  multi_rows <- row_axes[lens[row_axes] > 1]
  row_labels <- if (length(multi_rows)) {
    first_in_row <- images[grid$c == 1]
    vapply(first_in_row, function(img) {
      paste(vapply(multi_rows, function(axis) axis_label(axis, img$meta[[axis]]), character(1)),
            collapse = ", ")
    }, character(1))
  }

  meta <- sweep_meta(prompt, images, cells, axes, col_axis, row_axes, dots,
                     grid_dir = normalizePath(dirname(file), winslash = "/"))
  write_sweep_grid(images, ncol = lens[[col_axis]], col_labels = col_labels,
                   row_labels = row_labels, meta = meta, file = file)
  # Absolute, as the cells' paths are: the result still finds its file
  # after setwd() (plot(), knitr).
  file <- normalizePath(file, winslash = "/")

  if (identical(mode, "summary")) {
    secs <- as.double(difftime(Sys.time(), started, units = "secs"))
    cli::cli_inform("Sweep: {n} image{?s} in {prettyNum(round(secs, 1))}s, grid {.file {file}}.")
  }
  new_sd_sweep(file, images, cells, meta)
}

# Cairo, behind grDevices::png(), cannot open a larger device.
grid_max_px <- 32767

new_sd_sweep <- function(path, images, cells, meta) {
  structure(list(path = path, images = images, cells = cells, meta = meta),
            class = "sd_sweep")
}

axis_label <- function(axis, value) {
  name <- c(seed = "seed", guidance_scale = "guidance", steps = "steps")[[axis]]
  value <- if (identical(axis, "seed")) format_seed(value) else format(value)
  paste(name, value)
}

sweep_file <- function(dir) {
  unique_path(dir, paste0("sweep-", format(Sys.time(), "%Y%m%d-%H%M%S")))
}

# What the grid's PNG holds: the prompt and model like any image, what kind
# of file it is, the axes, and one entry per cell.
# A cell's file is named relative to the grid's folder where it is inside
# it (the folder can then be moved as a whole), else by its full path.
sweep_meta <- function(prompt, images, cells, axes, col_axis, row_axes, dots, grid_dir) {
  first <- images[[1]]$meta
  inside <- paste0(sub("/$", "", grid_dir), "/")
  cell_list <- lapply(seq_len(nrow(cells)), function(i) {
    m <- images[[i]]$meta
    path <- images[[i]]$path
    list(
      row = as.integer(cells$row[[i]]), col = as.integer(cells$col[[i]]),
      file = if (startsWith(path, inside)) substring(path, nchar(inside) + 1) else path,
      seed = m$seed,
      guidance_scale = m$guidance_scale, steps = m$steps,
      pixel_sha256 = m$pixel_sha256
    )
  })
  list(
    task = "sweep",
    prompt = prompt,
    negative_prompt = first$negative_prompt,
    model = first$model,
    scheduler = first$scheduler,
    width = first$width,
    height = first$height,
    sweep_columns = col_axis,
    sweep_rows = row_axes,
    sweep_axes = list(
      seed = unique(lapply(images, function(img) img$meta$seed)),
      guidance_scale = unique(cells$guidance_scale),
      steps = unique(cells$steps)
    ),
    cells = cell_list,
    created = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC")
  )
}

# Draws the grid into a png device at the cells' own resolution (one image
# pixel = one grid pixel), then writes the metadata into it.
write_sweep_grid <- function(images, ncol, col_labels, row_labels, meta, file,
                             call = caller_env()) {
  arrays <- lapply(unclass(images), function(img) read_png_array(image_file(img)))
  g <- grid_geometry(arrays, ncol, row_labels = row_labels, col_labels = col_labels)
  tmp <- tempfile(fileext = ".png")
  on.exit(remove_path(tmp), add = TRUE)
  # The user's current device is current again afterwards (dev.off() would
  # make the next one in the list current).
  before <- grDevices::dev.cur()
  # Text scales with the images: ~7% of a cell's height.
  grDevices::png(tmp, width = ceiling(g$width), height = ceiling(g$height),
                 units = "px", res = 72, bg = "white",
                 pointsize = max(4, round(0.07 * g$ch)))
  dev <- grDevices::dev.cur()
  tryCatch(
    draw_image_grid(arrays, ncol, row_labels = row_labels,
                    col_labels = col_labels, cex = 1),
    finally = {
      grDevices::dev.off(dev)
      if (before > 1) grDevices::dev.set(before)
    }
  )
  png_write_meta(tmp, file, meta = meta)
  invisible(file)
}

check_sweep_prompt <- function(prompt, arg = caller_arg(prompt), call = caller_env()) {
  if (!is.character(prompt) || length(prompt) != 1 || is.na(prompt)) {
    abort_input("{.arg {arg}} must be a single string, not {.obj_type_friendly {prompt}}.",
                call = call)
  }
}

check_sweep_axis <- function(x, arg = caller_arg(x), call = caller_env()) {
  if (is.null(x)) {
    return(invisible())
  }
  if (!(is.numeric(x) || is.character(x)) || length(x) == 0) {
    abort_input(
      "{.arg {arg}} must be {.code NULL} or a vector of values, not {.obj_type_friendly {x}}.",
      call = call
    )
  }
  if (anyNA(x)) {
    abort_input("{.arg {arg}} must not contain {.code NA} (value {which(is.na(x))[[1]]}).",
                call = call)
  }
  if (anyDuplicated(x)) {
    abort_input("{.arg {arg}} has repeated values: {.val {x[duplicated(x)]}}.", call = call)
  }
  invisible()
}

#' @export
format.sd_sweep <- function(x, ...) {
  m <- x$meta
  dims <- vapply(c("seed", "guidance_scale", "steps"), function(a) {
    length(m$sweep_axes[[a]])
  }, integer(1))
  c(
    sprintf("<sd_sweep> %d image%s: %d seed%s x %d guidance x %d steps",
            length(x$images), if (length(x$images) == 1) "" else "s",
            dims[[1]], if (dims[[1]] == 1) "" else "s",
            dims[[2]], dims[[3]]),
    sprintf("prompt: %s", encodeString(m$prompt, quote = '"')),
    sprintf("grid:   %s", x$path)
  )
}

#' @export
print.sd_sweep <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

#' @export
as.raster.sd_sweep <- function(x, ...) {
  grDevices::as.raster(read_png_array(image_file(x)))
}

#' @export
as.array.sd_sweep <- function(x, ...) {
  read_png_array(image_file(x))
}

#' @export
as.data.frame.sd_sweep <- function(x, row.names = NULL, optional = FALSE, ...) {
  cbind(x$cells[c("row", "col")], as.data.frame(x$images))
}

#' @export
plot.sd_sweep <- function(x, ...) {
  draw_image_grid(list(read_png_array(image_file(x))), ncol = 1, ...)
  invisible(x)
}

#' @exportS3Method knitr::knit_print
knit_print.sd_sweep <- function(x, options = NULL, ...) {
  knit_images(list(x), options)
}
