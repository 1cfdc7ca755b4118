# Ctrl+C cannot be pressed inside testthat: a child R process runs a long
# generation, the test sends it SIGINT once denoising has begun, and the
# child reports what it caught and whether the next generation works.

# How the child loads this same copy of the package: load_all() from the
# sources during development, library() when the package is installed
# (R CMD check).
child_load_code <- function() {
  path <- getNamespaceInfo(asNamespace("rdiffusers"), "path")
  # An installed package has R/ too, but only a source tree has R/*.R files.
  if (length(list.files(file.path(path, "R"), pattern = "[.]R$")) > 0) {
    bquote(pkgload::load_all(.(path), helpers = FALSE, quiet = TRUE))
  } else {
    bquote(library(rdiffusers, lib.loc = .(dirname(path))))
  }
}

child_script <- function(flag, out_dir) {
  code <- bquote({
    .(child_load_code())
    options(rdiffusers.cache_dir = .(getOption("rdiffusers.cache_dir")))
    # The test waits for this file: it holds the number of steps done, so
    # the test knows denoising is under way (and how far) when it interrupts.
    suppressMessages(trace(
      "progress_tick",
      # Written whole, then renamed: the test never reads a half-written file.
      exit = quote({
        writeLines(as.character(p$calls), .(paste0(flag, ".tmp")))
        file.rename(.(paste0(flag, ".tmp")), .(flag))
      }),
      where = asNamespace("rdiffusers"), print = FALSE
    ))
    steps_done <- function() as.integer(readLines(.(flag)))
    res <- tryCatch(
      sd_generate("a lighthouse", model = "tiny", seed = 1, n = 4, steps = 500,
                  width = 64, height = 64, output_dir = .(out_dir),
                  progress = "summary"),
      rdiffusers_interrupt = function(cnd) cnd
    )
    cat("CAUGHT:", paste(class(res), collapse = ","), "\n")
    cat("STEPS_AT_CATCH:", steps_done(), "\n")
    img <- sd_generate("a lighthouse", model = "tiny", seed = 7, steps = 2,
                       width = 64, height = 64, output_dir = .(out_dir),
                       progress = FALSE)
    cat("NEXT_EXISTS:", file.exists(img$path), "\n")
    cat("NEXT_SHA:", img$meta$pixel_sha256, "\n")
  })
  path <- withr::local_tempfile(fileext = ".R", .local_envir = parent.frame())
  writeLines(deparse(code, width.cutoff = 500L), path)
  path
}

output_value <- function(output, key) {
  line <- grep(paste0("^", key, ":"), strsplit(output, "\n")[[1]], value = TRUE)
  if (length(line) == 0) return(NA_character_)
  trimws(sub(paste0("^", key, ":"), "", line[[1]]))
}

# Starts the child, interrupts it once denoising is under way and returns
# its output, exit status and the steps done when the signal was sent (NULL
# when it never started denoising).
interrupt_child <- function(out_dir) {
  flag <- file.path(out_dir, "steps.txt")
  unlink(flag)
  script <- child_script(flag, out_dir)
  child <- processx::process$new(
    file.path(R.home("bin"), "Rscript"), script,
    stdout = "|", stderr = "2>&1"
  )
  withr::defer(if (child$is_alive()) child$kill())

  # Importing torch takes seconds; the tiny model then runs ~100 steps/s.
  deadline <- Sys.time() + 120
  while (!file.exists(flag) && child$is_alive() && Sys.time() < deadline) {
    Sys.sleep(0.05)
  }
  if (!file.exists(flag)) {
    if (child$is_alive()) child$kill()
    testthat::fail(paste0("The child never started denoising. Its output:\n",
                          child$read_all_output()))
    return(NULL)
  }
  Sys.sleep(0.2)
  steps_at_signal <- as.integer(readLines(flag))
  child$interrupt()
  child$wait(60000)
  # A child still running a minute later is stuck: stop it so its output
  # can be read (reading waits for the end of the process).
  alive <- child$is_alive()
  if (alive) child$kill()
  list(output = child$read_all_output(), alive = alive,
       status = child$get_exit_status(), steps_at_signal = steps_at_signal)
}

# reticulate before 1.37 can leave R and Python broken after an interrupt
# (rstudio/reticulate#1601): the child then crashes or hangs instead of
# finishing (2 of 5 CI runs when generation handed Python two R callbacks;
# see with_interrupts()). Not ours to fix, so that, and only that, earns up
# to two more tries; a child that ends normally is judged on its first run.
reticulate_interrupt_crash <- function(res) {
  utils::packageVersion("reticulate") < "1.37" &&
    (res$alive || grepl("caught segfault", res$output, fixed = TRUE))
}

test_that("an interrupt stops generation, is classed, and leaves the pipeline usable", {
  skip_if_no_python()
  skip_if_not_installed_ci("processx")
  skip_on_os("windows") # SIGINT cannot be sent to another process there.

  out_dir <- withr::local_tempdir()
  res <- interrupt_child(out_dir)
  if (is.null(res)) return()
  tries <- 1
  while (tries < 3 && reticulate_interrupt_crash(res)) {
    res <- interrupt_child(out_dir)
    if (is.null(res)) return()
    tries <- tries + 1
  }
  output <- res$output
  expect_false(res$alive)
  expect_identical(res$status, 0L, label = output)

  # The condition has the package's class and is an interrupt for R.
  expect_identical(output_value(output, "CAUGHT"), "rdiffusers_interrupt,interrupt,condition",
                   label = output)
  # It stopped soon after the signal, far from the 2000 steps requested.
  steps_at_catch <- as.integer(output_value(output, "STEPS_AT_CATCH"))
  expect_lt(steps_at_catch, 2000L)
  expect_lt(steps_at_catch - res$steps_at_signal, 100L)

  # The next call in the same session generates the same image as a clean
  # session does.
  expect_identical(output_value(output, "NEXT_EXISTS"), "TRUE", label = output)
  ref <- sd_generate("a lighthouse", model = "tiny", seed = 7, steps = 2,
                     width = 64, height = 64, output_dir = out_dir, progress = FALSE)
  expect_identical(output_value(output, "NEXT_SHA"), ref$meta$pixel_sha256)
})
