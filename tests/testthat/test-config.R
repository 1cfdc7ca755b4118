test_that("sd_config() reports a usable stack with versions and devices", {
  skip_if_no_python()
  expect_true(sd_available())
  cfg <- sd_config()
  expect_s3_class(cfg, "sd_config")
  expect_true(cfg$usable)
  expect_null(cfg$fix)
  expect_true(file.exists(cfg$python))
  expect_type(cfg$versions$torch, "character")
  expect_type(cfg$versions$diffusers, "character")
  expect_equal(cfg$versions$reticulate, as.character(utils::packageVersion("reticulate")))
  expect_true("cpu" %in% unlist(cfg$devices$available))
  expect_s3_class(cfg$pipelines, "data.frame")
  lines <- format(cfg)
  expect_match(lines[1], "rdiffusers configuration")
  expect_true(any(grepl("usable: +yes", lines)))
  expect_output(out <- print(cfg), "python:")
  expect_identical(out, cfg)
})

test_that("an unusable configuration prints what is missing and the fix", {
  cfg <- new_sd_config(list(
    python = NA_character_, how = "none",
    searched = c("virtualenv r-rdiffusers (/home/u/.virtualenvs/r-rdiffusers)"),
    error = "No Python environment for rdiffusers was found.",
    versions = list(rdiffusers = "0.1.0", reticulate = "1.28"),
    devices = NULL, pipelines = NULL, usable = FALSE,
    fix = "rdiffusers::sd_install()"
  ))
  expect_snapshot(print(cfg))
})

test_that("torch keeps its own BLAS inside R", {
  skip_if_no_python()
  skip_if_not(identical(Sys.info()[["sysname"]], "Linux"))
  # R's BLAS is in the process's global symbol scope; without rdiffusers'
  # binding torch's float32 matmuls would run on it (60x slower with the
  # reference BLAS). Python started by rdiffusers binds torch first.
  expect_identical(rdiffusers:::py_call("devices")$torch_blas, "deepbind")
  expect_identical(rdiffusers:::py_call("devices")$blas, "torch")
  # Where torch came first it runs on R's BLAS: sd_config() says so.
  cfg <- sd_config()
  expect_false(any(grepl("R's BLAS", format(cfg))))
  cfg$devices$blas <- "host"
  expect_true(any(grepl("uses R's BLAS", format(cfg))))
})
