test_that("helper exceptions map to classed R errors that keep the Python error", {
  skip_if_no_python()
  py_helper()
  # Importing the helper puts rdiffusers_py on sys.path.
  expect_true(is.list(py_call("presets")))
  raise <- function(code) {
    tryCatch(reticulate::py_run_string(code), error = identity)
  }
  cases <- list(
    c("from rdiffusers_py.errors import InputError\nraise InputError('steps must be >= 1')",
      "rdiffusers_error_input"),
    c("from rdiffusers_py.errors import ModelError\nraise ModelError('no such model')",
      "rdiffusers_error_model"),
    c("from rdiffusers_py.errors import LoraError\nraise LoraError('wrong base model')",
      "rdiffusers_error_lora"),
    c("from rdiffusers_py.errors import FileError\nraise FileError('cannot write')",
      "rdiffusers_error_file"),
    c("raise RuntimeError('size mismatch')", "rdiffusers_error_python")
  )
  for (case in cases) {
    cnd <- raise(case[[1]])
    err <- tryCatch(abort_from_python(cnd, "generate"), error = identity)
    expect_s3_class(err, case[[2]])
    expect_s3_class(err, "rdiffusers_error")
    if (case[[2]] == "rdiffusers_error_python") {
      # unexpected: the Python error is the parent, its traceback prints
      expect_identical(err$parent, cnd)
    } else {
      # the helper's own message, printed once
      expect_null(err$parent)
      expect_identical(err$python_error, cnd)
    }
  }
  err <- tryCatch(abort_from_python(raise(cases[[1]][[1]]), "generate"), error = identity)
  expect_equal(rlang::cnd_header(err), "steps must be >= 1")
  expect_equal(lengths(regmatches(conditionMessage(err), gregexpr("steps must be", conditionMessage(err)))), 1)
})

test_that("py_call() maps an error raised by a helper function", {
  skip_if_no_python()
  expect_error(
    py_call("load_pipeline", model = "no-such-model-anywhere", cache_dir = sd_cache_dir()),
    class = "rdiffusers_error_model"
  )
  # the session stays usable
  expect_true(is.list(py_call("presets")))
})

test_that("a Python KeyboardInterrupt becomes an rdiffusers_interrupt", {
  skip_if_no_python()
  py_helper()
  cnd <- tryCatch(reticulate::py_run_string("raise KeyboardInterrupt()"),
                  error = identity, interrupt = identity)
  got <- tryCatch(abort_from_python(cnd, "generate"),
                  rdiffusers_interrupt = identity)
  expect_s3_class(got, c("rdiffusers_interrupt", "interrupt", "condition"), exact = TRUE)
})

test_that("an interrupt is signalled with the agreed classes", {
  got <- tryCatch(signal_sd_interrupt(), interrupt = identity)
  expect_s3_class(got, c("rdiffusers_interrupt", "interrupt", "condition"), exact = TRUE)
})

test_that("requirements are read from the pinned file", {
  reqs <- requirements()
  expect_true(any(grepl("^torch==", reqs)))
  expect_true(any(grepl("^diffusers==", reqs)))
  expect_false(any(grepl("^#", reqs)))
})

test_that("a missing Python is a classed error that says what was searched and the fix", {
  skip_if_not_installed_ci("callr")
  res <- r_without_python(
    function() {
      err <- tryCatch(rdiffusers::sd_generate("a cat", steps = 2), error = identity)
      cfg <- rdiffusers::sd_config()
      list(
        available = rdiffusers::sd_available(),
        class = class(err),
        message = conditionMessage(err),
        usable = cfg$usable,
        fix = cfg$fix,
        format = format(cfg),
        # a valid pure-R call still works afterwards
        out = rdiffusers::sd_output_dir()
      )
    }
  )
  expect_false(res$available)
  expect_true("rdiffusers_error_python" %in% res$class)
  expect_match(res$message, "RDIFFUSERS_PYTHON=/nonexistent/rdiffusers/python", fixed = TRUE)
  # The variable keeps winning over the env sd_install() makes: the fix
  # names it.
  expect_match(res$message, 'Sys.unsetenv("RDIFFUSERS_PYTHON"); rdiffusers::sd_install()',
               fixed = TRUE)
  expect_false(res$usable)
  expect_equal(res$fix, 'Sys.unsetenv("RDIFFUSERS_PYTHON"); rdiffusers::sd_install()')
  expect_true(any(grepl("fix:", res$format)))
  expect_type(res$out, "character")
})

test_that("a chosen Python without torch says what to run, not 'No module named torch'", {
  skip_if_not_installed_ci("callr")
  skip_if_no_python()
  venv <- file.path(withr::local_tempdir(), "bare")
  made <- system2(sd_config()$python, c("-m", "venv", "--without-pip", shQuote(venv)),
                  stdout = FALSE, stderr = FALSE)
  skip_if(made != 0, "cannot create a virtualenv here")
  res <- r_fresh(function() {
    err <- tryCatch(rdiffusers::sd_generate("a cat", steps = 2), error = identity)
    list(class = class(err), message = conditionMessage(err))
  }, python = file.path(venv, "bin", "python"))
  expect_true("rdiffusers_error_python" %in% res$class)
  expect_match(res$message, "lacks torch, diffusers, and transformers", fixed = TRUE)
  expect_match(res$message, "RDIFFUSERS_PYTHON chooses this Python", fixed = TRUE)
})

test_that("RDIFFUSERS_PYTHON ignored because Python already runs is said, not silent", {
  skip_if_not_installed_ci("callr")
  skip_if_no_python()
  python <- sd_config()$python
  other <- Filter(function(p) file.exists(p) && dirname(p) != dirname(python),
                  c("/usr/bin/python3", unname(Sys.which("python3"))))
  skip_if(length(other) == 0, "no second Python")
  # r_fresh() ships the function alone: the other Python goes in its body.
  fun <- eval(bquote(function() {
    Sys.unsetenv("RETICULATE_PYTHON")  # r_fresh() sets it, to "" here
    reticulate::use_python(.(other[[1]]), required = TRUE)
    invisible(reticulate::py_config())
    w <- NULL
    withCallingHandlers(rdiffusers::sd_available(), warning = function(cnd) {
      w <<- cnd
      invokeRestart("muffleWarning")
    })
    list(class = class(w), message = conditionMessage(w))
  }))
  got <- r_fresh(fun, python = python)
  expect_true("rdiffusers_warning" %in% got$class)
  expect_match(got$message, "RDIFFUSERS_PYTHON.*is ignored", perl = TRUE)

  # Set after rdiffusers started its Python: said once, not on every call.
  later <- eval(bquote(function() {
    stopifnot(rdiffusers::sd_available())
    Sys.setenv(RDIFFUSERS_PYTHON = .(other[[1]]))
    said <- character()
    withCallingHandlers({
      rdiffusers::sd_available()
      rdiffusers::sd_available()
    }, warning = function(cnd) {
      said <<- c(said, conditionMessage(cnd))
      invokeRestart("muffleWarning")
    })
    said
  }))
  said <- r_fresh(later, python = python)
  expect_length(said, 1)
  expect_match(said, "RDIFFUSERS_PYTHON.*is ignored", perl = TRUE)
})

test_that("RDIFFUSERS_PYTHON at a folder or a non-Python: clear, and sd_available() quiet", {
  skip_if_not_installed_ci("callr")
  skip_on_os("windows")
  empty <- withr::local_tempdir()
  msg <- r_fresh(function() {
    tryCatch(rdiffusers::sd_generate("a cat"), error = conditionMessage)
  }, python = empty)
  # (cli wraps the message wherever the path's length puts the break.)
  expect_match(msg, "points to the directory", fixed = TRUE)
  expect_match(msg, "which holds no\\s+Python\\s+environment")
  fake <- file.path(empty, "not-python")
  writeLines(c("#!/bin/sh", "echo hello"), fake)
  Sys.chmod(fake, "755")
  res <- r_fresh(function() {
    warnings <- character()
    ok <- withCallingHandlers(rdiffusers::sd_available(), warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
    list(ok = ok, warnings = warnings)
  }, python = fake)
  expect_false(res$ok)
  expect_identical(res$warnings, character())
})

test_that("sd_available() and sd_config() never take the installing py_require() path", {
  skip_if_not_installed_ci("callr")
  res <- r_fresh(function() {
    root <- tempfile("no-envs-")
    dir.create(root)
    Sys.setenv(WORKON_HOME = root, RETICULATE_VIRTUALENV_ROOT = root)
    Sys.unsetenv(c("RDIFFUSERS_PYTHON", "RETICULATE_PYTHON"))
    # As with reticulate >= 1.41; py_require() itself must not be reached.
    utils::assignInNamespace("has_py_require", function() TRUE, "rdiffusers")
    list(available = rdiffusers::sd_available(), cfg = rdiffusers::sd_config(),
         started = reticulate::py_available(initialize = FALSE))
  }, python = "")
  expect_false(res$available)
  expect_identical(res$cfg$how, "reticulate::py_require()")
  expect_match(res$cfg$error, "the first generation installs", fixed = TRUE)
  expect_false(res$started)
})

test_that("sd_config() of a running Python without the stack says to restart after installing", {
  local_ns_mock(py_choose = function(...) list(ok = TRUE, how = "virtualenv r-rdiffusers",
                                               python = "/x/bin/python"),
                missing_py_stack = function() c("torch", "diffusers"))
  cfg <- sd_config()
  expect_false(cfg$usable)
  expect_identical(cfg$fix, "rdiffusers::sd_install(), then restart R")
  expect_match(cfg$error, "torch, diffusers")
})

test_that("the fix for an unusable Python fits how it was chosen", {
  expect_equal(python_fix(list(how = "virtualenv r-rdiffusers")), "rdiffusers::sd_install()")
  expect_equal(python_fix(list(how = "none")), "rdiffusers::sd_install()")
  expect_equal(python_fix(list(how = "RETICULATE_PYTHON")),
               'Sys.unsetenv("RETICULATE_PYTHON"); rdiffusers::sd_install()')
  # Python already runs (it lacks modules): another needs a restart.
  expect_equal(python_fix(list(how = "virtualenv r-rdiffusers"), started = TRUE),
               "rdiffusers::sd_install(), then restart R")
  expect_match(python_fix(list(how = "already initialized in this R session")),
               "restart R and use rdiffusers before anything else starts Python", fixed = TRUE)
  expect_match(python_fix(list(how = "RDIFFUSERS_PYTHON"), started = TRUE),
               "RDIFFUSERS_PYTHON chooses this Python.*restart R", perl = TRUE)
})

test_that("RDIFFUSERS_PYTHON wins over RETICULATE_PYTHON, as documented", {
  skip_if_not_installed_ci("callr")
  skip_if_no_python()
  python <- sd_config()$python
  # Any other Python path: reticulate alone would start that one. Paths are
  # compared as given: a virtualenv's python links to the system's (Debian:
  # both resolve to /usr/bin/python3.11), yet reticulate reports the one it
  # was told. (PATH may lead to the test's own env: reticulate puts a
  # virtualenv's bin/ first.)
  others <- Filter(function(p) nzchar(p) && file.exists(p) && dirname(p) != dirname(python),
                   c("/usr/bin/python3", "/usr/local/bin/python3",
                     unname(Sys.which(c("python3", "python")))))
  skip_if(length(others) == 0, "no second Python on PATH")
  got <- r_fresh(function() {
    cfg <- rdiffusers::sd_config()
    list(python = cfg$python, how = cfg$how, usable = cfg$usable,
         reticulate_python = Sys.getenv("RETICULATE_PYTHON"))
  }, python = python, reticulate_python = others[[1]])
  expect_identical(got$python, python)
  expect_identical(got$how, "RDIFFUSERS_PYTHON")
  expect_true(got$usable)
  expect_identical(got$reticulate_python, others[[1]])   # set back afterwards
})

test_that("a failed choice of Python is tried again next time; a good one is kept", {
  old <- the$py_choice
  withr::defer(the$py_choice <- old)
  the$py_choice <- NULL
  tries <- 0L
  local_ns_mock(py_choose_impl = function(install) {
    tries <<- tries + 1L
    list(ok = tries > 1, how = "test", python = NA_character_)
  })
  expect_false(py_choose(install = FALSE)$ok)
  expect_null(the$py_choice)
  expect_true(py_choose()$ok)
  expect_true(py_choose()$ok)
  expect_identical(tries, 2L)
})

test_that("sd_available() is FALSE for a Python without the stack", {
  local_ns_mock(py_choose = function(...) list(ok = TRUE, python = "/x/bin/python"),
                missing_py_stack = function() "torch")
  expect_false(sd_available())
})

test_that("environment variables set in R after Python started reach it before a call", {
  skip_if_no_python()
  py_helper()
  environ <- reticulate::import("os")$environ
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  sync_py_env()
  expect_identical(environ$get("HF_HUB_OFFLINE"), "1")
  Sys.setenv(HF_HUB_OFFLINE = "0")
  sync_py_env()
  expect_identical(environ$get("HF_HUB_OFFLINE"), "0")
  Sys.unsetenv("HF_HUB_OFFLINE")
  sync_py_env()
  expect_null(environ$get("HF_HUB_OFFLINE"))
})

test_that("torch's compile cache goes to rdiffusers' cache unless the user chose one", {
  skip_if_not_installed_ci("callr")
  got <- r_fresh(function() {
    Sys.setenv(TORCHINDUCTOR_CACHE_DIR = "/my/cache")
    rdiffusers:::use_cache_for_torch()
    mine <- Sys.getenv("TORCHINDUCTOR_CACHE_DIR")
    Sys.unsetenv("TORCHINDUCTOR_CACHE_DIR")
    rdiffusers:::use_cache_for_torch()
    c(mine, Sys.getenv("TORCHINDUCTOR_CACHE_DIR"))
  }, python = "")
  expect_identical(got[[1]], "/my/cache")
  expect_match(got[[2]], "torchinductor$")
})
