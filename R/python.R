# The bridge to Python: which Python is used, and how Python errors become
# classed R conditions.
#
# Python is chosen once per session, lazily, the first time the helper module
# is needed (never at load time), in this order:
#   1. RDIFFUSERS_PYTHON  -- an explicit override for this package
#   2. RETICULATE_PYTHON  -- reticulate honours it by itself
#   3. the virtualenv "r-rdiffusers" made by sd_install()
#   4. reticulate::py_require() with the pinned requirements (reticulate >= 1.41)
# RDIFFUSERS_PYTHON and RETICULATE_PYTHON are read, never changed (the one
# variable set is TORCHINDUCTOR_CACHE_DIR, when unset: use_cache_for_torch();
# RETICULATE_PYTHON is set aside while RDIFFUSERS_PYTHON's Python starts).

sd_envname <- function() "r-rdiffusers"

# Chooses Python (once). Returns a list(ok, how, python, error). Never errors:
# callers decide whether a failure is fatal (py_helper()) or not
# (sd_available(), sd_config()). `install = FALSE`: do not take the
# py_require() path, which installs the whole pinned stack (gigabytes) --
# not what a check such as sd_available() may do; generating does.
py_choose <- function(install = TRUE) {
  if (!is.null(the$py_choice)) {
    # Chosen and started: an RDIFFUSERS_PYTHON set since cannot take effect.
    warn_python_override_ignored(the$py_choice$python)
    return(the$py_choice)
  }
  use_cache_for_torch()
  choice <- py_choose_impl(install)
  # Only a successful choice is final; a failed one is retried next time so
  # that sd_install() followed by a new call works without restarting R.
  if (isTRUE(choice$ok)) {
    the$py_choice <- choice
  }
  choice
}

py_choose_impl <- function(install = TRUE) {
  searched <- character()
  result <- function(ok, how, error = NULL) {
    list(
      ok = ok, how = how, error = error, searched = searched,
      python = if (ok) py_exe_quiet() else NA_character_
    )
  }

  # Python already running in this session: it cannot be changed any more.
  if (reticulate::py_available(initialize = FALSE)) {
    warn_python_override_ignored(py_exe_quiet())
    return(result(TRUE, "already initialized in this R session"))
  }

  override <- Sys.getenv("RDIFFUSERS_PYTHON")
  if (nzchar(override)) {
    searched <- c(searched, paste0("RDIFFUSERS_PYTHON=", override))
    python <- override
    if (dir.exists(python)) {
      # A virtualenv directory is accepted as well as an executable.
      python <- file.path(python, if (is_windows()) "Scripts/python.exe" else "bin/python")
      if (!file.exists(python)) {
        return(result(FALSE, "RDIFFUSERS_PYTHON", paste0(
          "RDIFFUSERS_PYTHON points to the directory ", override, ", which holds no ",
          "Python environment (no ", python, ").")))
      }
    }
    if (!file.exists(python)) {
      return(result(FALSE, "RDIFFUSERS_PYTHON",
                    paste0("RDIFFUSERS_PYTHON points to ", override, ", which does not exist.")))
    }
    # reticulate lets RETICULATE_PYTHON override use_python(), so it is set
    # aside while Python starts (after that, it no longer matters).
    reticulate_python <- Sys.getenv("RETICULATE_PYTHON", NA)
    if (!is.na(reticulate_python)) {
      Sys.unsetenv("RETICULATE_PYTHON")
      on.exit(Sys.setenv(RETICULATE_PYTHON = reticulate_python), add = TRUE)
    }
    err <- try_python({
      reticulate::use_python(python, required = TRUE)
      reticulate::py_config()
    })
    return(result(is.null(err), "RDIFFUSERS_PYTHON", err))
  }

  if (nzchar(Sys.getenv("RETICULATE_PYTHON"))) {
    searched <- c(searched, paste0("RETICULATE_PYTHON=", Sys.getenv("RETICULATE_PYTHON")))
    err <- try_python(reticulate::py_config())
    return(result(is.null(err), "RETICULATE_PYTHON", err))
  }

  envname <- sd_envname()
  searched <- c(searched, paste0("virtualenv ", envname, " (", venv_dir(envname), ")"))
  if (isTRUE(tryCatch(reticulate::virtualenv_exists(envname), error = function(e) FALSE))) {
    err <- try_python(reticulate::use_virtualenv(envname, required = TRUE))
    return(result(is.null(err), paste0("virtualenv ", envname), err))
  }

  if (has_py_require()) {
    searched <- c(searched, "reticulate::py_require()")
    if (!install) {
      return(result(FALSE, "reticulate::py_require()", paste0(
        "Not started yet: the first generation installs the pinned packages into an ",
        "environment managed by reticulate::py_require().")))
    }
    py_require <- getExportedValue("reticulate", "py_require")
    err <- try_python({
      py_require(requirements(), python_version = paste0(">=", python_min))
      reticulate::py_config()
    })
    return(result(is.null(err), "reticulate::py_require()", err))
  }
  searched <- c(searched, paste0(
    "reticulate::py_require() (needs reticulate >= 1.41, this is ",
    utils::packageVersion("reticulate"), ")"
  ))

  result(FALSE, "none", "No Python environment for rdiffusers was found.")
}

# torch writes compiled kernels (and, on import, precompiled headers) under
# the session's temporary directory unless told otherwise. Unless the user
# chose a place, keep them in rdiffusers' cache: they are reused across
# sessions (optimize = "bf16-compile") and leave nothing behind in tempdir().
# Must run before Python starts, which reads the environment once.
use_cache_for_torch <- function() {
  if (!nzchar(Sys.getenv("TORCHINDUCTOR_CACHE_DIR")) &&
      !reticulate::py_available(initialize = FALSE)) {
    Sys.setenv(TORCHINDUCTOR_CACHE_DIR = file.path(sd_cache_dir(), "torchinductor"))
  }
  invisible()
}

# The Python modules rdiffusers cannot work without, and those of them the
# chosen Python lacks (all, when it cannot even tell).
py_stack <- c("torch", "diffusers", "transformers")
missing_py_stack <- function() {
  py_stack[!tryCatch(py_has_modules(py_stack), error = function(e) FALSE)]
}

# Which of `modules` the chosen Python can import, found without importing
# them: importing torch takes seconds, and must come after the helper module
# has kept torch on its own BLAS (inst/python/rdiffusers_py/_blas.py).
# (reticulate::py_module_available() imports the module.)
py_has_modules <- function(modules) {
  util <- reticulate::import("importlib.util")
  vapply(modules, function(m) !is.null(util$find_spec(m)), logical(1))
}

has_py_require <- function() {
  utils::packageVersion("reticulate") >= "1.41" &&
    exists("py_require", envir = asNamespace("reticulate"), inherits = FALSE)
}

# NULL on success, the error message otherwise. Warnings are dropped: a
# Python that is no Python makes reticulate's system2() calls warn, and
# sd_available() must stay quiet in `if ()`; the error says what failed.
try_python <- function(expr) {
  tryCatch({
    suppressWarnings(force(expr))
    NULL
  }, error = function(e) conditionMessage(e))
}

py_exe_quiet <- function() {
  tryCatch(reticulate::py_config()$python, error = function(e) NA_character_)
}

is_windows <- function() .Platform$OS.type == "windows"

# Pinned requirements, one "name==version" a line (comments dropped).
requirements <- function() {
  path <- system.file("python", "requirements.txt", package = "rdiffusers")
  lines <- trimws(sub("#.*$", "", readLines(path, warn = FALSE)))
  lines[nzchar(lines)]
}

# The helper module, after making sure Python was chosen. Errors with
# class rdiffusers_error_python (and the fix) when no Python can be used.
py_helper <- function(call = caller_env()) {
  choice <- py_choose()
  if (!isTRUE(choice$ok)) {
    abort_python_missing(choice, call = call)
  }
  if (!isTRUE(the$py_modules_ok)) {
    # A Python without the stack would fail inside the first call with
    # "No module named 'torch'" and no way out: say what to run instead.
    missing <- missing_py_stack()
    if (length(missing)) {
      sd_abort(
        c("The Python {.pkg rdiffusers} uses lacks {.pkg {missing}}.",
          i = "Python: {.file {choice$python}} ({choice$how}).",
          i = "Fix: {python_fix(choice, started = TRUE)}"),
        class = "rdiffusers_error_python", call = call
      )
    }
    the$py_modules_ok <- TRUE
  }
  the$py
}

# What fixes an unusable Python, as one line. `started`: Python runs in this
# session (it lacks modules), so another one needs a restart of R. An
# environment variable that chose the Python keeps winning over the env
# sd_install() makes, so it is named.
python_fix <- function(choice, started = FALSE) {
  var <- intersect(choice$how, c("RDIFFUSERS_PYTHON", "RETICULATE_PYTHON"))
  if (length(var)) {
    if (!started) {
      return(sprintf('Sys.unsetenv("%s"); rdiffusers::sd_install()', var))
    }
    return(sprintf(paste0("%s chooses this Python: point it to one with torch and diffusers, ",
                          "or unset it, restart R and run rdiffusers::sd_install()"), var))
  }
  if (identical(choice$how, "already initialized in this R session")) {
    # Another package (or reticulate itself) started a Python first.
    return(paste0("restart R and use rdiffusers before anything else starts Python through ",
                  "reticulate (run rdiffusers::sd_install() first if you never did)"))
  }
  if (started) {
    return("rdiffusers::sd_install(), then restart R")
  }
  "rdiffusers::sd_install()"
}

abort_python_missing <- function(choice, call = caller_env()) {
  searched <- choice$searched
  names(searched) <- rep("*", length(searched))
  sd_abort(
    c(
      "Python for {.pkg rdiffusers} is not available.",
      i = "Searched, in order:",
      searched,
      x = "{choice$error}",
      i = "Fix: {python_fix(choice)}"
    ),
    class = "rdiffusers_error_python",
    call = call
  )
}

# RDIFFUSERS_PYTHON names another Python than the one already running (other
# code started Python through reticulate first, or the variable was set
# after rdiffusers started one): say so, once per value, as it would
# otherwise be ignored without a word.
warn_python_override_ignored <- function(running) {
  override <- Sys.getenv("RDIFFUSERS_PYTHON")
  if (!nzchar(override) || is.na(running) || identical(override, the$override_warned)) {
    return(invisible())
  }
  exe <- override
  if (dir.exists(exe)) {
    exe <- file.path(exe, if (is_windows()) "Scripts/python.exe" else "bin/python")
  }
  # One environment = one folder of executables: a virtualenv's python is
  # a link to the base Python's, so the links themselves are not followed.
  bin <- function(p) normalizePath(dirname(path.expand(p)), winslash = "/", mustWork = FALSE)
  if (!identical(bin(exe), bin(running))) {
    the$override_warned <- override
    cli::cli_warn(
      c("{.envvar RDIFFUSERS_PYTHON} is ignored: this R session already runs Python {.file {running}}, and Python cannot be changed once started.",
        i = "Restart R to use another Python (set the variable before anything starts Python)."),
      class = "rdiffusers_warning"
    )
  }
  invisible()
}

# Environment variables the helper reads while it runs. Python copies the
# environment when it starts (os.environ), so a Sys.setenv() in R after that
# would never reach it: they are handed over before a call when changed.
py_env_vars <- c("RDIFFUSERS_TORCH_THREADS", "HF_HUB_OFFLINE")

sync_py_env <- function() {
  now <- Sys.getenv(py_env_vars, unset = NA)
  if (identical(now, the$py_env)) {
    return(invisible())
  }
  environ <- reticulate::import("os", convert = FALSE)$environ
  for (var in py_env_vars) {
    if (is.na(now[[var]])) environ$pop(var, NULL) else reticulate::py_set_item(environ, var, now[[var]])
  }
  the$py_env <- now
  invisible()
}

# Calls one function of the helper module and turns Python exceptions into
# classed R errors and R interrupts into `rdiffusers_interrupt` conditions.
py_call <- function(fun_name, ..., call = caller_env()) {
  py <- py_helper(call = call)
  sync_py_env()
  # Accessing the attribute imports the delay-loaded helper on first use.
  fun <- tryCatch(
    py[[fun_name]],
    error = function(e) abort_helper_import(e, call = call)
  )
  tryCatch(
    fun(...),
    interrupt = function(cnd) signal_sd_interrupt(cnd),
    error = function(cnd) {
      # An R error raised inside an R callback that Python called is already
      # ours: pass it on unchanged.
      if (inherits(cnd, "rdiffusers_error")) stop(cnd)
      abort_from_python(cnd, fun_name, call = call)
    }
  )
}

abort_helper_import <- function(parent, call = caller_env()) {
  sd_abort(
    c(
      "The {.pkg rdiffusers} Python helper could not be imported.",
      i = "Python: {.file {py_exe_quiet()}}",
      i = "Fix: run {.run rdiffusers::sd_install()} and restart R."
    ),
    class = "rdiffusers_error_python",
    parent = parent,
    call = call
  )
}

# R classes of the helper's exception classes (errors.py).
py_error_classes <- c(
  InputError = "rdiffusers_error_input",
  ModelError = "rdiffusers_error_model",
  LoraError = "rdiffusers_error_lora",
  FileError = "rdiffusers_error_file"
)

abort_from_python <- function(cnd, fun_name, call = caller_env()) {
  names <- py_exception_names(cnd)
  if (any(names %in% c("KeyboardInterrupt", "builtins.KeyboardInterrupt"))) {
    signal_sd_interrupt(cnd)
  }
  short <- sub("^.*\\.", "", names)
  hit <- intersect(short, names(py_error_classes))
  class <- if (length(hit)) py_error_classes[[hit[[1]]]] else "rdiffusers_error_python"
  msg <- py_exception_message(cnd)
  if (identical(class, "rdiffusers_error_python")) {
    # Unexpected: the Python error is the parent, so its traceback prints.
    sd_abort("Python error in {.fn {fun_name}}: {msg}", class = class, parent = cnd,
             call = call, python_exception = names[1] %||% NA_character_)
  }
  # The helper's own errors are written for R users: printing the Python
  # error as parent would only repeat the message. It stays in the
  # condition, as `python_error`.
  sd_abort("{msg}", class = class, call = call, python_error = cnd,
           python_exception = names[1] %||% NA_character_)
}

# Qualified names of the Python exception classes (most derived first), from
# the R condition's class (reticulate >= 1.30 puts the MRO there) or from
# reticulate::py_last_error() (reticulate 1.28 keeps it there).
py_exception_names <- function(cnd) {
  cls <- class(cnd)
  from_class <- setdiff(cls, c("error", "condition", "Rcpp::exception", "C++Error"))
  from_class <- sub("^python\\.builtin\\.", "", from_class)
  if (length(from_class) && any(grepl("Error|Exception|Interrupt", from_class))) {
    return(from_class)
  }
  last <- tryCatch(reticulate::py_last_error(), error = function(e) NULL)
  exc <- attr(last, "exception") %||%
    (if (inherits(last, "python.builtin.object")) last)
  if (!is.null(exc)) {
    mro <- tryCatch({
      klasses <- reticulate::py_get_attr(
        reticulate::py_get_attr(exc, "__class__"), "__mro__"
      )
      klasses <- reticulate::py_to_r(klasses)
      vapply(klasses, function(k) {
        paste0(reticulate::py_to_r(reticulate::py_get_attr(k, "__module__")), ".",
               reticulate::py_to_r(reticulate::py_get_attr(k, "__name__")))
      }, character(1))
    }, error = function(e) NULL)
    if (length(mro)) {
      return(sub("^builtins\\.", "", mro))
    }
  }
  type <- if (is.list(last)) last$type
  if (is.character(type)) return(type)
  # Last resort: "module.Class: message" at the start of the message.
  m <- regmatches(conditionMessage(cnd), regexpr("^[A-Za-z_][A-Za-z0-9_.]*(?=:)", conditionMessage(cnd), perl = TRUE))
  if (length(m)) m else character()
}

# The Python message without reticulate's "module.Class: " prefix.
py_exception_message <- function(cnd) {
  msg <- conditionMessage(cnd)
  msg <- sub("^(Error in py_call_impl\\([^)]*\\) :\\s*)", "", msg)
  msg <- sub("^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception|Interrupt): ", "", msg)
  # reticulate >= 1.30 appends a "Run `reticulate::py_last_error()`" hint and
  # the traceback after the message; the parent keeps them.
  msg <- sub("\n\\s*Run `reticulate::py_last_error\\(\\)`.*$", "", msg)
  trimws(msg)
}

# Turns an interrupt (R's, or Python's KeyboardInterrupt) into the package's
# interrupt condition: handlers for `rdiffusers_interrupt` or `interrupt`
# see it; when none takes it, R returns to the top level as after Ctrl+C.
# `images`: what a generation call finished and saved before the interrupt.
signal_sd_interrupt <- function(parent = NULL, images = NULL) {
  cnd <- structure(
    class = c("rdiffusers_interrupt", "interrupt", "condition"),
    list(message = "Generation interrupted.", call = NULL, parent = parent,
         images = images)
  )
  signalCondition(cnd)
  invokeRestart("abort")
}

# Directory of a virtualenv given by name (under reticulate's root) or path.
# A name is a plain folder name: ".", ".." or "~" would name the root itself,
# the home directory, or another folder that is not an environment.
venv_dir <- function(envname, call = caller_env()) {
  if (grepl("[/\\\\]", envname)) {
    return(path.expand(envname))
  }
  if (!grepl("^[A-Za-z0-9_][A-Za-z0-9._-]*$", envname)) {
    abort_input(
      c("{.arg envname} must be a name of letters, digits, {.val .}, {.val _} and {.val -}, or a path with a {.val /}, not {.val {envname}}.",
        i = "A name is a folder under {.file {reticulate::virtualenv_root()}}."),
      call = call
    )
  }
  file.path(path.expand(reticulate::virtualenv_root()), envname)
}
