# Shared set-up for Python-backed tests.
#
# Tiny models are built once per test run into a temporary cache, never into
# the user's cache; torch runs on a fixed thread count so pixels are
# bit-identical between calls.
# The options and environment variables are set in setup.R: teardown_env()
# exists only once testthat runs setup files, not while helpers are sourced
# by load_all().

# Skips a test when the Python stack is missing -- except in CI (CI=true),
# where a missing Python dependency must fail the run, not hide tests.
skip_if_no_python <- function() {
  if (rdiffusers::sd_available()) {
    return(invisible(TRUE))
  }
  if (identical(tolower(Sys.getenv("CI")), "true")) {
    stop("CI=true but the rdiffusers Python stack is not available:\n",
         paste(format(rdiffusers::sd_config()), collapse = "\n"), call. = FALSE)
  }
  testthat::skip("rdiffusers Python stack not available (run rdiffusers::sd_install())")
}
