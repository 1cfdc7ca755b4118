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

# skip_if_not_installed(), except in CI (CI=true), where dev/setup.sh
# installs every package the suite uses: there a missing one fails the run
# instead of quietly dropping tests (Ctrl+C, "never starts Python").
skip_if_not_installed_ci <- function(pkg) {
  if (requireNamespace(pkg, quietly = TRUE)) {
    return(invisible(TRUE))
  }
  if (identical(tolower(Sys.getenv("CI")), "true")) {
    stop("CI=true but the R package ", pkg, " is not installed (see dev/setup.sh).",
         call. = FALSE)
  }
  testthat::skip(paste(pkg, "is not installed"))
}

# Runs `fun()` in a fresh R session with rdiffusers loaded (the source tree
# when the tests run from it, else the installed package), with
# RDIFFUSERS_PYTHON and RETICULATE_PYTHON set as given. Returns fun()'s value.
r_fresh <- function(fun, python, reticulate_python = "") {
  pkg <- normalizePath(testthat::test_path("..", ".."), mustWork = FALSE)
  environment(fun) <- globalenv()  # ship the function, not the test's frame
  callr::r(
    function(pkg, fun) {
      # A source tree has R/*.R files; an installed package (R CMD check,
      # covr) has a DESCRIPTION there too, but no sources.
      if (length(list.files(file.path(pkg, "R"), pattern = "[.]R$"))) {
        pkgload::load_all(pkg, helpers = FALSE, quiet = TRUE, export_all = FALSE)
      } else {
        library(rdiffusers)
      }
      fun()
    },
    args = list(pkg = pkg, fun = fun),
    env = c(callr::rcmd_safe_env(), RDIFFUSERS_PYTHON = python,
            RETICULATE_PYTHON = reticulate_python)
  )
}

# r_fresh() with a Python that does not exist: anything that tries to start
# Python fails.
r_without_python <- function(fun) {
  r_fresh(fun, python = "/nonexistent/rdiffusers/python")
}
