test_that("sd_sweep() checks its arguments before generating anything", {
  expect_error(sd_sweep(c("a", "b")), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", seed = c(1, NA)), "must not contain `NA` \\(value 2\\)",
               class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", guidance_scale = c(5, 5)), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", steps = list(2)), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", n = 2), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", progress = "loud"), class = "rdiffusers_error_input")
  # Each value as sd_generate() checks it, not only when its cell comes up.
  out <- withr::local_tempdir()
  expect_error(sd_sweep("a", steps = c(2, 1.5), model = "tiny", width = 64, height = 64,
                        output_dir = out), class = "rdiffusers_error_input")
  expect_length(list.files(out), 0)
  expect_error(sd_sweep("a", guidance_scale = c(5, Inf)), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", seed = c(1, -3)), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", seed = c("1", "x")), class = "rdiffusers_error_input")
  # "01" is seed 1: two identical cells.
  expect_error(sd_sweep("a", seed = c("1", "01")), "same seed", class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", progress = "yes"), "`progress`", class = "rdiffusers_error_input")
  # Too many cells, or a grid too large for the png device, before any cell.
  expect_error(sd_sweep("a", seed = 1:200, guidance_scale = 1:100, output_dir = out),
               "at most 10000", class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", seed = 1:20, guidance_scale = 1:100, width = 512, height = 512,
                        output_dir = out),
               "53310 x 10701 pixels", class = "rdiffusers_error_input")
  expect_length(list.files(out), 0)
})

test_that("a step count the model cannot run stops the sweep before its first image", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  expect_error(sd_sweep("a", model = "tiny", steps = c(2, 5000), output_dir = out,
                        progress = FALSE),
               "at most 1000", class = "rdiffusers_error_input")
  # PNDM's Runge-Kutta warm-up needs 4 steps: found from the other cell too.
  expect_error(sd_sweep("a", model = "tiny", steps = c(5, 2), scheduler = "PNDMScheduler",
                        output_dir = out, progress = FALSE),
               "at least 4 steps", class = "rdiffusers_error_input")
  expect_length(list.files(out, all.files = TRUE, no.. = TRUE), 0)
  # The check lasts for the sweep only: a later call runs 2 steps.
  expect_s3_class(sd_generate("a", model = "tiny", steps = 2, output_dir = out, progress = FALSE),
                  "sd_image")
})

test_that("a sweep of exactly the most images allowed is not refused", {
  local_ns_mock(sd_run = function(...) rlang::abort("first cell", class = "test_cell"))
  expect_error(sd_sweep("a", seed = 1:100, guidance_scale = 1:100, output_dir = withr::local_tempdir(),
                        progress = FALSE), class = "test_cell")
})

test_that("single values are labelled with what was used; a finished sweep says nothing", {
  skip_if_no_python()
  labels <- NULL
  real <- write_sweep_grid
  local_ns_mock(write_sweep_grid = function(images, ncol, col_labels, ...) {
    labels <<- col_labels
    real(images, ncol, col_labels, ...)
  })
  said <- messages_of(
    sw <- sd_sweep("a", model = "tiny", seed = 1, steps = 2, width = 64, height = 64,
                   output_dir = withr::local_tempdir(), progress = FALSE)
  )
  expect_length(said, 0)
  # The guidance left NULL is the model's default, and says so.
  expect_identical(labels, axis_label("guidance_scale", sw$images[[1]]$meta$guidance_scale))
  expect_match(labels, "[0-9]")
})

test_that("a grid too large for the model's size stops after the first cell", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  # The tiny model's size (64 x 64) is known once its first image is made.
  expect_message(
    expect_error(sd_sweep("a", model = "tiny", seed = 1:2, guidance_scale = 1:600, steps = 1,
                          output_dir = out, progress = FALSE),
                 "png device", class = "rdiffusers_error_input"),
    "1 of 1200 sweep images finished before the stop and is saved", class = "rdiffusers_message"
  )
  expect_length(list.files(out, pattern = "^sd-"), 1)
  expect_length(list.files(out, pattern = "^sweep-"), 0)
})

test_that("a stopped sweep keeps its finished cells and draws no grid", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  real_start <- progress_start
  calls <- 0
  local_ns_mock(progress_start = function(...) {
    p <- real_start(...)
    calls <<- calls + 1
    # Ctrl+C during the third cell's first step.
    if (calls == 3) p$callback <- function(image_index, step, total) rlang::interrupt()
    p
  })
  expect_message(
    got <- tryCatch(
      sd_sweep("a lighthouse", model = "tiny", seed = 1:2, guidance_scale = c(1, 9), steps = 2,
               width = 64, height = 64, output_dir = out, progress = FALSE),
      rdiffusers_interrupt = identity
    ),
    "2 of 4 sweep images finished", class = "rdiffusers_message"
  )
  expect_s3_class(got, "rdiffusers_interrupt")
  expect_s3_class(got$images, "sd_images")
  # The first row: guidance 1 and 9 with seed 1.
  expect_equal(vapply(got$images, function(img) img$meta$guidance_scale, 0), c(1, 9))
  expect_equal(vapply(got$images, function(img) img$meta$seed, 0), c(1, 1))
  expect_setequal(normalizePath(list.files(out, all.files = TRUE, no.. = TRUE, full.names = TRUE)),
                  normalizePath(vapply(got$images, function(img) img$path, "")))
})

test_that("a sweep renders every combination into one labelled grid", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  sw <- sd_sweep("a lighthouse", model = "tiny", seed = c(1, 2),
                 guidance_scale = c(1, 9), steps = c(2, 3),
                 width = 64, height = 64, output_dir = out, progress = FALSE)
  expect_s3_class(sw, "sd_sweep")
  expect_s3_class(sw$images, "sd_images")
  expect_length(sw$images, 8)

  # Columns: guidance; rows: seed x steps, seed outermost.
  expect_identical(sw$cells$col, rep(1:2, 4))
  expect_identical(sw$cells$row, rep(1:4, each = 2))
  expect_identical(unlist(sw$cells$seed), rep(c(1, 2), each = 4))
  expect_identical(sw$cells$steps, rep(rep(2:3, each = 2), 2))
  expect_identical(sw$cells$guidance_scale, rep(c(1, 9), 4))
  # Each cell is what its settings say, and the settings make a difference.
  expect_identical(sw$images[[8]]$meta$steps, 3L)
  expect_identical(sw$images[[8]]$meta$guidance_scale, 9)
  shas <- vapply(sw$images, function(img) img$meta$pixel_sha256, character(1))
  expect_identical(anyDuplicated(shas), 0L)

  # The grid: 2 columns x 4 rows of 64 px cells plus labels and gaps.
  expect_true(file.exists(sw$path))
  px <- png::readPNG(sw$path)
  expect_gt(dim(px)[[2]], 2 * 64)
  expect_lt(dim(px)[[2]], 2 * 64 * 1.5)
  expect_gt(dim(px)[[1]], 4 * 64)
  expect_lt(dim(px)[[1]], 4 * 64 * 1.5)
  # The first cell's pixels are in the grid unchanged (drawn 1:1).
  cell <- png::readPNG(sw$images[[1]]$path)
  g <- grid_geometry(rep(list(cell), 8), ncol = 2, row_labels = "r", col_labels = "c")
  x0 <- round(g$left) + 1
  y0 <- round(g$top) + 1
  inner <- px[y0 + 8:55, x0 + 8:55, 1:3]
  expect_lt(max(abs(inner - cell[9:56, 9:56, 1:3])), 2 / 255)
})

test_that("the grid's metadata lists the axes and every cell", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  sw <- sd_sweep("a lighthouse", model = "tiny", seed = c(3, 4),
                 guidance_scale = c(2, 6, 8), steps = 2,
                 width = 64, height = 64, output_dir = out, progress = FALSE)
  meta <- png_read_meta(sw$path)
  expect_identical(meta$task, "sweep")
  expect_identical(meta$prompt, "a lighthouse")
  expect_identical(meta$sweep_columns, "guidance_scale")
  expect_identical(meta$sweep_axes$guidance_scale, c(2, 6, 8))
  expect_identical(meta$sweep_axes$steps, 2L)
  expect_identical(unlist(meta$sweep_axes$seed), c(3, 4))
  expect_length(meta$cells, 6)
  files <- vapply(meta$cells, function(cell) cell$file, character(1))
  expect_identical(files, basename(vapply(sw$images, function(img) img$path, character(1))))
  expect_true(all(file.exists(file.path(out, files))))
  # Each cell's entry agrees with that cell's own PNG.
  for (cell in meta$cells) {
    own <- png_read_meta(file.path(out, cell$file))
    expect_identical(cell$seed, own$seed)
    expect_identical(cell$guidance_scale, own$guidance_scale)
    expect_identical(cell$pixel_sha256, own$pixel_sha256)
  }
  # Converted like an sd_image (the grid) and an sd_images (the cells).
  px <- png::readPNG(sw$path)
  expect_identical(dim(as.array(sw)), dim(px))
  expect_identical(dim(as.raster(sw)), dim(px)[1:2])
  df <- as.data.frame(sw)
  expect_identical(names(df), c("row", "col", names(as.data.frame(sw$images))))
  expect_identical(df$col, rep(1:3, 2))
  expect_identical(df$guidance_scale, rep(c(2, 6, 8), 2))
  expect_identical(df$seed, rep(c(3, 4), each = 3))
  expect_identical(df$path, vapply(sw$images, function(img) img$path, ""))
  # A sweep stands for its grid where a file is read.
  expect_identical(png_read_meta(sw), meta)
  expect_identical(as_image_file(sw, out)$path, sw$path)
  copy <- file.path(withr::local_tempdir(), "copy.png")
  png_write_meta(sw, copy)
  expect_identical(png_read_meta(copy)$task, "sweep")
  expect_error(sd_reproduce(sw), "sd_sweep\\(\\)` grid", class = "rdiffusers_error_reproduce")
  skip_if_not_installed_ci("magick")
  expect_identical(magick::image_info(as_magick(sw))$width, ncol(as.raster(sw)))
})

test_that("a relative file is returned as an absolute path", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  withr::with_dir(out, {
    sw <- sd_sweep("a fox", model = "tiny", seed = 1, steps = 2, width = 64, height = 64,
                   output_dir = "cells", progress = FALSE, file = "grid.png")
  })
  expect_identical(sw$path, normalizePath(file.path(out, "grid.png"), winslash = "/"))
  expect_true(file.exists(sw$path))
  expect_true(file.exists(sw$images[[1]]$path))
  # The grid names its cells relative to its own folder (they were only
  # file names, which did not find cells in another folder) ...
  cell <- png_read_meta(sw$path)$cells[[1]]$file
  expect_identical(cell, file.path("cells", basename(sw$images[[1]]$path)))
  expect_true(file.exists(file.path(dirname(sw$path), cell)))
  # ... and by full path where they are elsewhere.
  apart <- sd_sweep("a fox", model = "tiny", seed = 1, steps = 2, width = 64, height = 64,
                    output_dir = withr::local_tempdir(), progress = FALSE,
                    file = file.path(out, "apart.png"))
  expect_identical(png_read_meta(apart$path)$cells[[1]]$file, apart$images[[1]]$path)
  # The R object names every cell by its full path.
  expect_identical(apart$cells$file, vapply(apart$images, function(i) i$path, ""))
  expect_true(all(file.exists(sw$cells$file)))
  expect_output(print(sw), "<sd_sweep> 1 image: 1 seed", fixed = TRUE)
})

test_that("settings left NULL are shared by every cell", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  sw <- sd_sweep("a lighthouse", model = "tiny", guidance_scale = c(1, 9),
                 steps = 2, width = 64, height = 64, output_dir = out,
                 progress = FALSE, file = file.path(out, "grid.png"))
  expect_identical(sw$path, normalizePath(file.path(out, "grid.png"), winslash = "/"))
  expect_identical(sw$images[[1]]$meta$seed, sw$images[[2]]$meta$seed)
  expect_output(print(sw), "2 images: 1 seed x 2 guidance x 1 steps")
  expect_output(print(sw), "grid.png", fixed = TRUE)
})

test_that("an unknown argument lists what sd_sweep()'s ... takes", {
  err <- expect_error(sd_sweep("a fox", seed = 1:2, foo = 1), "Unknown argument `foo`",
                      class = "rdiffusers_error_input")
  expect_match(conditionMessage(err), "`negative_prompt`", fixed = TRUE)
  expect_match(conditionMessage(err), "`width`", fixed = TRUE)
  expect_match(conditionMessage(err), "`clip_skip`", fixed = TRUE)
  expect_no_match(conditionMessage(err), "`seed`", fixed = TRUE)
})

test_that("sd_sweep() checks its paths first and never replaces a file", {
  expect_error(sd_sweep("a fox", seed = 1:2, output_dir = NULL), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a fox", seed = 1:2, file = 3), class = "rdiffusers_error_input")
  existing <- withr::local_tempfile(fileext = ".png")
  writeLines("keep me", existing)
  expect_error(sd_sweep("a fox", seed = 1:2, file = existing), class = "rdiffusers_error_exists")
  expect_identical(readLines(existing), "keep me")
  out <- withr::local_tempdir()
  expect_error(sd_sweep("a fox", seed = 1:2, output_dir = out,
                        file = file.path(out, "no-such-dir", "grid.png")),
               class = "rdiffusers_error_file")
  expect_length(list.files(out), 0)    # nothing generated
  # A directory, or a link to a file that is gone, before any cell either.
  expect_error(sd_sweep("a fox", seed = 1:2, output_dir = out, file = out),
               "is a directory", class = "rdiffusers_error_file")
  expect_error(sd_sweep("a fox", seed = 1:2, output_dir = out, file = file.path(out, "new/")),
               "is a directory", class = "rdiffusers_error_file")
  if (file.symlink(file.path(tempdir(), "gone.png"), link <- withr::local_tempfile())) {
    expect_error(sd_sweep("a fox", seed = 1:2, output_dir = out, file = link),
                 class = "rdiffusers_error_exists")
  }
  expect_length(list.files(out), 0)
  skip_if_not(dir.exists("/proc") && !dir_writable("/proc"))
  expect_error(sd_sweep("a fox", seed = 1:2, output_dir = out, file = "/proc/grid.png"),
               class = "rdiffusers_error_file")
  expect_length(list.files(out), 0)
})

test_that("drawing a grid leaves the user's current graphics device current", {
  dir <- withr::local_tempdir()
  paths <- file.path(dir, c("a.png", "b.png"))
  for (p in paths) png::writePNG(array(0.5, c(8, 8, 3)), p)
  imgs <- new_sd_images(lapply(paths, new_sd_image))
  grDevices::pdf(file.path(dir, "first.pdf"))
  first <- grDevices::dev.cur()
  grDevices::pdf(file.path(dir, "mine.pdf"))
  mine <- grDevices::dev.cur()
  withr::defer(for (d in c(mine, first)) grDevices::dev.off(d))
  write_sweep_grid(imgs, 2, col_labels = c("x", "y"), row_labels = NULL,
                   meta = list(task = "sweep"), file = file.path(dir, "grid.png"))
  expect_identical(grDevices::dev.cur(), mine)
  expect_true(file.exists(file.path(dir, "grid.png")))
})

test_that("the sweep's bar shows from the start and ends with a line saying how", {
  skip_if_no_python()
  withr::local_options(cli.dynamic = FALSE, cli.progress_show_after = 0)
  out <- withr::local_tempdir()
  msgs <- testthat::capture_messages(
    sd_sweep("a fox", model = "tiny", seed = 1:2, steps = 1, width = 64, height = 64,
             output_dir = out, progress = TRUE)
  )
  msgs <- paste(msgs, collapse = "")
  expect_match(msgs, "Sweep image 0/2", fixed = TRUE)
  expect_match(msgs, "Sweep: 2 images in", fixed = TRUE)
})
