local_cli_plain <- function(.env = parent.frame()) {
  withr::local_options(
    cli.dynamic = FALSE, cli.ansi = FALSE, cli.unicode = FALSE,
    cli.num_colors = 1, cli.progress_show_after = 0, cli.width = 80,
    .local_envir = .env
  )
}

# Elapsed times and ETAs change from run to run, and so do the bar lines
# between the first and the last (cli redraws on a timer).
scrub_times <- function(x) {
  x <- x[!grepl("step [1-9].*%", x)]
  gsub("[0-9.]+(ms|s|m)\\b", "<time>", x)
}

test_that("the mode comes from the argument, else the option, else interactive()", {
  withr::local_options(rdiffusers.progress = NULL)
  expect_identical(progress_mode(NULL), if (interactive()) "bar" else "none")
  withr::local_options(rdiffusers.progress = "summary")
  expect_identical(progress_mode(NULL), "summary")
  expect_identical(progress_mode(TRUE), "bar")
  expect_identical(progress_mode(FALSE), "none")
  expect_identical(progress_mode("none"), "none")
})

test_that("by default an interactive session shows a bar, except while knitting", {
  withr::local_options(rdiffusers.progress = NULL)
  rlang::local_interactive(TRUE)
  withr::local_options(knitr.in.progress = NULL)
  expect_identical(progress_mode(NULL), "bar")
  withr::local_options(knitr.in.progress = TRUE)
  expect_identical(progress_mode(NULL), "none")
  expect_identical(progress_mode(TRUE), "bar")   # asked for, even then
})

test_that("a bad rdiffusers.progress option is named as the culprit", {
  withr::local_options(rdiffusers.progress = "yes")
  expect_error(progress_mode(NULL), "options(rdiffusers.progress)", fixed = TRUE,
               class = "rdiffusers_error_input")
})

test_that("an invalid mode is an input error naming the argument", {
  expect_error(progress_start(1, 2, show = NA), class = "rdiffusers_error_input")
  expect_snapshot(progress_start(1, 2, show = "loud"), error = TRUE)
})

test_that("silent progress gives no callback and prints nothing", {
  p <- progress_start(2, 3, show = FALSE)
  expect_null(p$callback)
  expect_silent(progress_done(p))
})

test_that("the callback counts steps of each image", {
  local_cli_plain()
  p <- progress_start(2, 3, show = "summary")
  p$callback(0L, 1L, 3L)
  expect_identical(c(p$image, p$step), c(1L, 1L))
  for (s in 2:3) p$callback(0L, s, 3L)
  p$callback(1L, 1L, 3L)
  expect_identical(c(p$calls, p$image, p$step), c(4L, 2L, 1L))
  for (s in 2:3) p$callback(1L, s, 3L)
  expect_message(progress_done(p), "2 images x 3 steps")
  expect_false(p$failed)
})

test_that("the total follows the steps the pipeline really runs", {
  local_cli_plain()
  # img2img with strength 0.5 runs half the requested steps.
  p <- progress_start(1, 10, show = "summary")
  for (s in 1:5) p$callback(0L, s, 5L)
  expect_identical(p$steps, 5L)
  expect_message(progress_done(p), "1 image x 5 steps")
  expect_false(p$failed)
})

test_that("more steps than expected never count past the last image; a total of 0 is no total", {
  local_cli_plain()
  p <- progress_start(1, 2, show = "summary")
  p$callback(0L, 1L, 0L)
  expect_identical(p$steps, 2L)
  for (s in 2:5) p$callback(0L, s, 2L)
  expect_identical(p$image, 1L)
})

test_that("unknown steps are taken from the first callback", {
  local_cli_plain()
  p <- progress_start(1, NA, show = "summary")
  for (s in 1:4) p$callback(0L, s, 4L)
  expect_message(progress_done(p), "1 image x 4 steps")
})

test_that("the bar shows image, step and a tick when done", {
  local_cli_plain()
  expect_snapshot(
    {
      p <- progress_start(2, 3, show = TRUE)
      for (i in 0:1) for (s in 1:3) p$callback(i, s, 3)
      progress_done(p)
    },
    transform = scrub_times
  )
})

test_that("an unfinished run closes the bar as failed and prints no summary", {
  local_cli_plain()
  expect_snapshot(
    {
      p <- progress_start(2, 3, show = TRUE)
      for (s in 1:2) p$callback(0, s, 3)
      progress_done(p)
    },
    transform = scrub_times
  )
  expect_true(p$failed)

  p <- progress_start(2, 3, show = "summary")
  p$callback(0, 1, 3)
  expect_silent(progress_done(p))
  expect_true(p$failed)
})

test_that("a call that fails after its last step is not reported as done", {
  local_cli_plain()
  # Every step ran, then decoding or writing the file failed (or Ctrl+C).
  p <- progress_start(1, 2, show = "summary")
  for (s in 1:2) p$callback(0, s, 2)
  expect_silent(progress_done(p, ok = FALSE))
  expect_true(p$failed)
  p <- progress_start(1, 2, show = "summary")
  for (s in 1:2) p$callback(0, s, 2)
  p$interrupted <- TRUE
  expect_silent(progress_done(p))
  expect_true(p$failed)
})

test_that("sd_generate() reports a failure after the last step as a failure", {
  skip_if_no_python()
  local_cli_plain()
  local_ns_mock(write_final_png = function(...) stop("disk full"))
  said <- messages_of(expect_error(
    sd_generate("a cat", model = "tiny", width = 64, height = 64, steps = 2,
                seed = 1, output_dir = withr::local_tempdir(), progress = "summary"),
    "disk full"
  ))
  # No "generated" summary: the error tells what happened.
  expect_length(said, 0)
})

test_that("progress_done() can be called twice", {
  local_cli_plain()
  p <- progress_start(1, 1, show = "summary")
  p$callback(0, 1, 1)
  expect_message(progress_done(p))
  expect_silent(progress_done(p))
})

test_that("with_status() shows a step, returns the value and marks failures", {
  local_cli_plain()
  expect_snapshot(
    {
      x <- with_status("Loading {.val tiny}", 42, show = TRUE)
      x
    },
    transform = scrub_times
  )
  expect_snapshot(
    with_status("Loading {.val tiny}", abort_input("no such model"), show = TRUE),
    error = TRUE,
    transform = scrub_times
  )
  expect_silent(y <- with_status("Loading", "value", show = FALSE))
  expect_identical(y, "value")
  expect_silent(with_status("Loading", 1, show = "summary"))
})

test_that("sd_generate() reports every denoising step through the callback", {
  skip_if_no_python()
  local_cli_plain()
  withr::local_options(rdiffusers.progress = FALSE)
  out <- withr::local_tempdir()
  msgs <- testthat::capture_messages(
    sd_generate("a red square", model = "tiny", seed = 1, n = 2, steps = 3,
                width = 64, height = 64, output_dir = out, progress = "summary")
  )
  expect_match(paste(msgs, collapse = ""), "2 images x 3 steps")

  # The option is used when the argument is not given ...
  withr::local_options(rdiffusers.progress = "summary")
  expect_message(
    sd_generate("a red square", model = "tiny", seed = 1, steps = 2,
                width = 64, height = 64, output_dir = out),
    "1 image x 2 steps"
  )
  # ... and the argument wins over the option.
  expect_silent(
    sd_generate("a red square", model = "tiny", seed = 1, steps = 2,
                width = 64, height = 64, output_dir = out, progress = FALSE)
  )
})
