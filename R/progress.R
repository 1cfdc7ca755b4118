# Progress reporting for long operations ---------------------------------
#
# Contract with the R core (generate.R, python.R):
#
#   p <- progress_start(n_images, steps, show = progress)
#   res <- with_interrupts(p, function(callback) py_call("generate", ...))
#   progress_done(p)
#
# `p$callback` is NULL when nothing is shown, otherwise an R function
# `function(image_index, step, total)` that the Python helper calls once per
# denoising step of each image (image_index and step counted from 1, total
# the number of steps that image runs).

#' Progress mode from an argument or the `rdiffusers.progress` option
#'
#' `TRUE`/`"bar"`: a cli progress bar; `"summary"`: one line when done;
#' `FALSE`/`"none"`: silent.
#' @noRd
progress_mode <- function(show = NULL, arg = caller_arg(show), call = caller_env()) {
  force(arg)  # before `show` is reassigned: caller_arg() reads it lazily
  if (is.null(show)) {
    # Not while knitting, even from an interactive session (RStudio's Knit
    # button, rmarkdown::render() at the console): the bar would land in
    # the document, one block per update.
    show <- getOption("rdiffusers.progress",
                      rlang::is_interactive() && !isTRUE(getOption("knitr.in.progress")))
    arg <- "options(rdiffusers.progress)"
  }
  if (is.logical(show) && length(show) == 1 && !is.na(show)) {
    return(if (show) "bar" else "none")
  }
  modes <- c("bar", "summary", "none")
  if (is.character(show) && length(show) == 1 && show %in% modes) {
    return(show)
  }
  abort_input(
    c(
      "{.arg {arg}} must be {.code TRUE}, {.code FALSE}, or one of {.or {.val {modes}}}.",
      x = "It is {.obj_type_friendly {show}}."
    ),
    call = call
  )
}

#' Start reporting progress over denoising steps
#'
#' @param n_images Number of images to be generated.
#' @param steps Denoising steps per image (the bar's total is corrected from
#'   the callback when a pipeline runs fewer, e.g. img2img with `strength`).
#' @param show `NULL` (the option `rdiffusers.progress`, else a bar in an
#'   interactive session that is not knitting),
#'   `TRUE`/`FALSE`, or one of `"bar"`, `"summary"`, `"none"`.
#' @returns An environment with `$callback` (a function or `NULL`), `$mode`,
#'   `$calls` (steps reported so far) and `$failed` (set by progress_done() when fewer steps ran than expected).
#' @noRd
progress_start <- function(n_images, steps, show = NULL,
                           label = "Generating", call = caller_env()) {
  p <- new.env(parent = baseenv())
  p$mode <- progress_mode(show, arg = "progress", call = call)
  p$label <- label
  p$n_images <- as.integer(n_images)
  p$steps <- as.integer(steps)
  p$calls <- 0L
  p$image <- 1L
  p$step <- 0L
  p$failed <- FALSE
  p$started <- Sys.time()
  p$id <- NULL
  p$callback <- NULL

  if (identical(p$mode, "bar")) {
    # The bar lives in `p` (not in this frame) so it survives this function
    # returning; progress_done() closes it.
    p$id <- cli::cli_progress_bar(
      name = label,
      # NA (steps not known yet, e.g. a preset's default) until the first
      # callback reports the total.
      total = if (is.na(p$steps)) NA else max(1L, p$n_images * p$steps),
      format = paste0(
        "{cli::pb_spin} {label} image {image}/{n_images} ",
        "step {step}/{steps} {cli::pb_bar} {cli::pb_percent} | ETA: {cli::pb_eta}"
      ),
      format_done = paste0(
        "{cli::col_green(cli::symbol$tick)} {label}: {n_images} image{?s} ",
        "in {cli::pb_elapsed}"
      ),
      format_failed = paste0(
        "{cli::col_red(cli::symbol$cross)} {label}: stopped at image ",
        "{image}/{n_images}, step {step}/{steps}"
      ),
      clear = FALSE,
      .auto_close = FALSE,
      .envir = p
    )
    # Shown at once (not after cli's usual 2 s delay): the model may load
    # before the first step, and the user should see that work has begun.
    cli::cli_progress_update(set = 0, id = p$id, force = TRUE, .envir = p)
  }
  if (!identical(p$mode, "none")) {
    p$callback <- function(image_index, step, total) {
      progress_tick(p, image_index, step, total)
    }
  }
  p
}

progress_tick <- function(p, image_index, step, total) {
  # Counting calls (not trusting index bases) keeps the bar right whether
  # the helper counts images and steps from 0 or from 1.
  p$calls <- p$calls + 1L
  total <- as.integer(total)
  if (!is.na(total) && total > 0L && !identical(total, p$steps)) {
    p$steps <- total
    if (!is.null(p$id)) {
      cli::cli_progress_update(total = p$n_images * total, id = p$id, .envir = p)
    }
  }
  per <- max(1L, p$steps)
  p$image <- min(p$n_images, (p$calls - 1L) %/% per + 1L)
  p$step <- (p$calls - 1L) %% per + 1L
  if (!is.null(p$id)) {
    cli::cli_progress_update(set = p$calls, id = p$id, .envir = p)
  }
  invisible(TRUE)
}

#' Finish reporting progress
#'
#' Closes the bar, or prints the one-line summary in `"summary"` mode.
#' Safe to call more than once.
#' @param ok `FALSE` when the call did not finish (an error or interrupt,
#'   possibly after the last step: decoding, writing files).
#' @noRd
progress_done <- function(p, ok = TRUE) {
  if (is.null(p) || isTRUE(p$finished)) {
    return(invisible())
  }
  p$finished <- TRUE
  # A call that did not finish, was interrupted, or ran fewer steps than
  # expected failed: the bar says so and the summary stays silent.
  expected <- p$n_images * p$steps
  p$failed <- p$failed || !isTRUE(ok) || isTRUE(p$interrupted) || is.na(expected) ||
    p$calls < expected
  if (!is.null(p$id)) {
    cli::cli_progress_done(id = p$id, .envir = p, result = if (p$failed) "failed" else "done")
  } else if (identical(p$mode, "summary") && !p$failed) {
    secs <- as.double(difftime(Sys.time(), p$started, units = "secs"))
    n <- p$n_images
    steps <- p$steps
    cli::cli_inform(
      "{p$label}: {n} image{?s} x {steps} step{?s} in {prettyNum(round(secs, 1))}s."
    )
  }
  invisible()
}

#' Show a one-line status while an expression runs
#'
#' For the slow steps that have no step count: loading a model, installing
#' the Python environment. Shows `msg` with a spinner, then a tick (or a
#' cross when `expr` fails) and the time taken; silent when progress is off
#' (see [progress_mode()]), and in `"summary"` mode.
#'
#' @param msg A cli-formatted message, interpolated in the caller.
#' @param expr The expression to evaluate.
#' @param show As for `progress_start()`.
#' @returns The value of `expr`.
#' @noRd
with_status <- function(msg, expr, show = NULL, .envir = parent.frame()) {
  if (!identical(progress_mode(show, arg = "progress", call = .envir), "bar")) {
    return(expr)
  }
  msg <- cli::format_inline(msg, .envir = .envir)
  # Bound to this frame: cli marks it done (or failed, on error) when
  # with_status() returns.
  cli::cli_progress_step("{msg}")
  expr
}
