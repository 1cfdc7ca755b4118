# A stand-in "python" for the install steps: it passes the version check
# (unless `version_ok = FALSE`) and fails `-m venv` after creating bin/python
# (as Debian's python without python3-venv does; `venv_ok = TRUE`: succeeds),
# and fails every `-m pip`.
fake_python <- function(dir, venv_ok = FALSE, version_ok = TRUE) {
  path <- tempfile("fake-python-", tmpdir = dir)
  writeLines(c(
    "#!/bin/sh",
    sprintf("case \"$*\" in *sys.version_info*) echo %s; exit 0 ;; esac",
            if (version_ok) "True" else "False"),
    "if [ \"$1\" = \"-m\" ] && [ \"$2\" = \"venv\" ]; then",
    sprintf("  mkdir -p \"$3/bin\" && cp \"$0\" \"$3/bin/python\"; exit %d", if (venv_ok) 0 else 1),
    "fi",
    "[ \"$1\" = \"-m\" ] && [ \"$2\" = \"pip\" ] && exit 1",
    "exit 0"
  ), path)
  Sys.chmod(path, "755")
  path
}

test_that("arguments are checked before anything is touched", {
  expect_error(sd_install(envname = ""), class = "rdiffusers_error_input")
  expect_error(sd_install(fresh = NA), class = "rdiffusers_error_input")
  expect_error(sd_install(quiet = "yes"), class = "rdiffusers_error_input")
  expect_error(sd_install(torch_index = 1), class = "rdiffusers_error_input")
  expect_error(sd_install("x", 1), class = "rdiffusers_error_input")
})

test_that("fresh = TRUE never deletes an environment sd_install() did not create", {
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  dir <- file.path(root, "someone-elses")
  dir.create(file.path(dir, "bin"), recursive = TRUE)
  file.create(file.path(dir, "bin", "python"))
  expect_equal(venv_dir("someone-elses"), normalizePath(dir, mustWork = FALSE))
  expect_false(is_our_venv(dir))
  expect_error(
    sd_install("someone-elses", fresh = TRUE, quiet = TRUE),
    class = "rdiffusers_error_install"
  )
  expect_true(file.exists(file.path(dir, "bin", "python")))
})

test_that("fresh = TRUE deletes an environment carrying the marker", {
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  dir <- file.path(root, "ours")
  dir.create(file.path(dir, "bin"), recursive = TRUE)
  file.create(file.path(dir, "bin", "python"))
  write_marker(dir)
  expect_true(is_our_venv(dir))
  expect_match(readLines(marker_file(dir))[1], "sd_install")
  # The Python to rebuild with is checked first: a wrong one deletes nothing.
  expect_error(
    sd_install("ours", fresh = TRUE, quiet = TRUE, python = file.path(root, "no-python")),
    class = "rdiffusers_error_python"
  )
  expect_true(is_our_venv(dir))
  # With a usable one it is deleted, then rebuilt (here the stand-in's pip
  # fails, so nothing is downloaded, and the half-made new one is removed).
  skip_on_os("windows")
  expect_error(
    sd_install("ours", fresh = TRUE, quiet = TRUE, python = fake_python(root, venv_ok = TRUE)),
    class = "rdiffusers_error_install"
  )
  expect_false(dir.exists(dir))
})

test_that("names that are not plain folder names are refused", {
  for (bad in c(".", "..", "~", "-x", "a b")) {
    expect_error(sd_install(bad, quiet = TRUE), class = "rdiffusers_error_input")
  }
})

test_that("an existing folder with files is never built into or marked", {
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  dir <- file.path(root, "project")
  dir.create(dir)
  writeLines("x <- 1", file.path(dir, "analysis.R"))
  expect_error(sd_install(dir, quiet = TRUE), class = "rdiffusers_error_install")
  expect_identical(list.files(dir, all.files = TRUE, no.. = TRUE), "analysis.R")
  expect_error(sd_install(dir, fresh = TRUE, quiet = TRUE), class = "rdiffusers_error_install")
  expect_true(file.exists(file.path(dir, "analysis.R")))
})

test_that("a failed creation leaves nothing; an env without pip is reported, not retried", {
  skip_on_os("windows")
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  py <- fake_python(root)
  expect_error(sd_install("half", python = py, quiet = TRUE), class = "rdiffusers_error_install")
  expect_false(dir.exists(file.path(root, "half")))
  # A marked folder left without Python (an interrupted creation) is ours to
  # build into again, and removed again when that fails.
  left <- file.path(root, "left")
  dir.create(left)
  write_marker(left)
  expect_error(sd_install("left", python = py, quiet = TRUE), class = "rdiffusers_error_install")
  expect_false(dir.exists(left))

  # One left behind by an older version: python there, pip broken.
  dir <- file.path(root, "nopip")
  dir.create(file.path(dir, "bin"), recursive = TRUE)
  file.copy(py, file.path(dir, "bin", "python"))
  write_marker(dir)
  expect_snapshot(sd_install("nopip", quiet = TRUE), error = TRUE,
                  transform = function(x) gsub(root, "<root>", x, fixed = TRUE))
})

test_that("a failed pip install removes the environment it made, not one that was there", {
  skip_on_os("windows")
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  py <- fake_python(root, venv_ok = TRUE)
  expect_error(sd_install("new", python = py, quiet = TRUE), "exited with status",
               class = "rdiffusers_error_install")
  expect_false(dir.exists(file.path(root, "new")))
  # An existing environment is updated in place: a failure leaves it.
  old <- file.path(root, "old")
  dir.create(file.path(old, "bin"), recursive = TRUE)
  pip_ok <- c("#!/bin/sh", "case \"$*\" in *sys.version_info*) echo True; exit 0 ;; esac",
              "[ \"$3\" = \"--version\" ] && exit 0", "exit 1")
  writeLines(pip_ok, file.path(old, "bin", "python"))
  Sys.chmod(file.path(old, "bin", "python"), "755")
  write_marker(old)
  expect_error(sd_install("old", quiet = TRUE), "fresh = TRUE", class = "rdiffusers_error_install")
  expect_true(file.exists(file.path(old, "bin", "python")))
})

test_that("an existing environment with too old a Python is refused before pip runs", {
  skip_on_os("windows")
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  dir <- file.path(root, "old")
  dir.create(file.path(dir, "bin"), recursive = TRUE)
  file.copy(fake_python(root, version_ok = FALSE), file.path(dir, "bin", "python"))
  write_marker(dir)
  expect_error(sd_install("old", quiet = TRUE), "older than 3.11",
               class = "rdiffusers_error_install")
})

test_that("torch comes from torch_index, the other pins from the default index", {
  skip_on_os("windows")
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root,
                      RDIFFUSERS_PYTHON = NA, RETICULATE_PYTHON = NA)
  log <- file.path(root, "pip.log")
  # A stand-in Python whose venv and pip succeed, pip writing its arguments.
  py <- file.path(root, "python")
  writeLines(c(
    "#!/bin/sh",
    "case \"$*\" in *sys.version_info*) echo True; exit 0 ;; esac",
    "if [ \"$1\" = \"-m\" ] && [ \"$2\" = \"venv\" ]; then",
    "  mkdir -p \"$3/bin\" && cp \"$0\" \"$3/bin/python\"; exit 0",
    "fi",
    sprintf("[ \"$1\" = \"-m\" ] && [ \"$2\" = \"pip\" ] && echo \"$*\" >> %s", shQuote(log)),
    "exit 0"
  ), py)
  Sys.chmod(py, "755")
  sd_install("rec", python = py, torch_index = "https://example.org/whl/cpu", quiet = TRUE)
  calls <- readLines(log)
  torch <- grep("torch==", calls, value = TRUE)
  expect_length(torch, 1)
  expect_match(torch, "--index-url https://example.org/whl/cpu", fixed = TRUE)
  others <- grep("diffusers==", calls, value = TRUE)
  expect_length(others, 1)
  expect_false(grepl("--index-url", others, fixed = TRUE))
  expect_true(is_our_venv(file.path(root, "rec")))
})

test_that("fresh = TRUE never deletes home, the root, or the running Python's environment", {
  home <- normalizePath("~", winslash = "/", mustWork = FALSE)
  for (dir in c(home, dirname(home), "/")) expect_true(protected_dir(dir), label = dir)
  expect_false(protected_dir(file.path(tempdir(), "env")))
  # The environment this session's Python runs from, though marked as ours.
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  env <- file.path(root, "running")
  dir.create(file.path(env, "bin"), recursive = TRUE)
  file.create(file.path(env, "bin", "python"))
  write_marker(env)
  local_ns_mock(running_python = function() file.path(env, "bin", "python"))
  expect_error(sd_install("running", fresh = TRUE, quiet = TRUE), "Python runs from it",
               class = "rdiffusers_error_install")
  expect_true(file.exists(file.path(env, "bin", "python")))
})

test_that("a folder holding only hidden files is not empty: never built into", {
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  dir <- file.path(root, "dotted")
  dir.create(file.path(dir, ".git"), recursive = TRUE)
  skip_on_os("windows")
  # (A stand-in Python: were the folder taken for empty, nothing real runs.)
  expect_error(sd_install(dir, python = fake_python(root), quiet = TRUE),
               "not a Python environment", class = "rdiffusers_error_install")
  expect_false(is_our_venv(dir))
  expect_identical(list.files(dir, all.files = TRUE, no.. = TRUE), ".git")
})

test_that("a real install creates a marked env with the pinned stack", {
  skip_if_not(identical(Sys.getenv("RDIFFUSERS_TEST_INSTALL"), "true"),
              "set RDIFFUSERS_TEST_INSTALL=true to run a real install")
  root <- withr::local_tempdir()
  withr::local_envvar(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
  python <- sd_install("r-rdiffusers-test", quiet = TRUE,
                       torch_index = NULL)
  expect_true(file.exists(python))
  expect_true(is_our_venv(file.path(root, "r-rdiffusers-test")))
  # Every pin, as pip spells it ("huggingface-hub", "Pillow", "torch==...+cpu").
  name <- function(x) tolower(gsub("[-_.]+", "-", sub("==.*", "", x)))
  version <- function(x) sub("\\+.*$", "", sub("^.*==", "", x))
  freeze <- grep("==", system2(python, c("-m", "pip", "freeze"), stdout = TRUE),
                 value = TRUE, fixed = TRUE)
  installed <- stats::setNames(version(freeze), name(freeze))
  for (pin in grep("==", requirements(), value = TRUE, fixed = TRUE)) {
    expect_identical(unname(installed[name(pin)]), version(pin), label = pin)
  }
})

test_that("the Python floor is the newest one a pinned package requires", {
  skip_if_no_python()
  py_helper()
  pins <- sub("==.*", "", grep("==", requirements(), value = TRUE, fixed = TRUE))
  meta <- reticulate::import("importlib.metadata")
  needs <- vapply(pins, function(p) meta$metadata(p)$get("Requires-Python", ""), "")
  specifiers <- reticulate::import("packaging.specifiers")
  accepts <- function(version) {
    vapply(needs, function(n) specifiers$SpecifierSet(n)$contains(version), logical(1))
  }
  expect_true(all(accepts(python_min)))
  below <- sprintf("3.%d", as.integer(sub("^3\\.", "", python_min)) - 1L)
  expect_false(all(accepts(below)))
})
