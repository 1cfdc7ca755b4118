# Test-run options (see helper-python.R for why they are set here).
withr::local_options(
  rdiffusers.cache_dir = file.path(tempdir(), "rdiffusers-test-cache"),
  rdiffusers.progress = FALSE,
  .local_envir = testthat::teardown_env()
)
withr::local_envvar(
  RDIFFUSERS_TORCH_THREADS = "1",
  .local_envir = testthat::teardown_env()
)

