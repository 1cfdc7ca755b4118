#' Install the Python stack for rdiffusers
#'
#' Creates (or refreshes) a Python virtual environment with the versions of
#' torch, diffusers, transformers and their companions that rdiffusers is
#' tested with (pinned in `inst/python/requirements.txt`). Afterwards, restart
#' R: rdiffusers finds the default environment, `"r-rdiffusers"`, by itself
#' (see [sd_config()]); for another `envname`, point `RDIFFUSERS_PYTHON` at it.
#'
#' torch is installed first, on its own, so that you can choose its build with
#' `torch_index`:
#' * `NULL` (default): PyPI's default build -- with CUDA on Linux, with MPS
#'   (Apple GPU) support on macOS, CPU on Windows.
#' * `"https://download.pytorch.org/whl/cpu"`: a much smaller CPU-only build
#'   for Linux and Windows.
#' * `"https://download.pytorch.org/whl/cu128"` (or `cu126`, ...): a build for
#'   a given CUDA version, e.g. for CUDA on Windows.
#'
#' An existing environment is updated in place. With `fresh = TRUE` it is
#' deleted first -- but only if `sd_install()` created it (it leaves a marker
#' file); an environment made by someone else is never deleted. A new
#' environment is only made in a folder that does not exist yet or is empty,
#' and a failed creation is removed again.
#'
#' If `RDIFFUSERS_PYTHON` or `RETICULATE_PYTHON` is set, the environment is
#' still installed, but those variables keep taking precedence over it.
#'
#' @param envname Name of the virtualenv (a folder name under
#'   `reticulate::virtualenv_root()`: letters, digits, `.`, `_`, `-`) or a
#'   path to one (containing a `/`).
#' @param ... Further arguments for `pip install`, e.g. `"--no-cache-dir"`.
#' @param torch_index `NULL` or the package index URL to install torch from
#'   (see above).
#' @param python Python executable (>= 3.11, what the pinned diffusers and
#'   transformers need) to create the environment with;
#'   `NULL` finds one.
#' @param fresh If `TRUE`, delete the environment first (only one created by
#'   `sd_install()`).
#' @param quiet If `TRUE`, show no progress messages or pip output.
#' @returns The path of the environment's Python, invisibly.
#' @family setup
#' @export
#' @examples
#' \dontrun{
#' sd_install()
#' # CPU-only torch on Linux (a far smaller download):
#' sd_install(torch_index = "https://download.pytorch.org/whl/cpu")
#' }
sd_install <- function(envname = "r-rdiffusers", ..., torch_index = NULL,
                       python = NULL, fresh = FALSE, quiet = FALSE) {
  call <- rlang::current_env()
  check_string(envname)
  check_string(torch_index, allow_null = TRUE)
  check_string(python, allow_null = TRUE)
  check_flag(fresh)
  check_flag(quiet)
  pip_extra <- c(...)
  if (length(pip_extra) && (!is.character(pip_extra) || anyNA(pip_extra))) {
    abort_input("{.arg ...} must be strings (extra {.code pip install} arguments).")
  }
  say <- function(msg, .envir = parent.frame()) {
    if (!quiet) cli::cli_alert_info(msg, .envir = .envir)
  }

  dir <- venv_dir(envname, call = call)
  # The Python to create the environment with, found (and checked) once.
  starter <- NULL
  find_starter <- function() {
    found <- python %||% find_starter_python()
    check_python_version(found)
    found
  }
  if (fresh && dir.exists(dir)) {
    if (!is_our_venv(dir)) {
      sd_abort(
        c("Will not delete {.file {dir}}: {.fn sd_install} did not create it.",
          i = "Delete it yourself, or choose another {.arg envname}."),
        class = "rdiffusers_error_install"
      )
    }
    target <- normalizePath(dir, winslash = "/", mustWork = FALSE)
    if (protected_dir(target)) {
      sd_abort("Will not delete {.file {dir}}: it is not an environment folder.",
               class = "rdiffusers_error_install")
    }
    running <- running_python()
    if (rlang::is_string(running) && !is.na(running) &&
        startsWith(normalizePath(running, winslash = "/", mustWork = FALSE), paste0(target, "/"))) {
      sd_abort(
        c("Will not delete {.file {dir}}: this R session's Python runs from it.",
          i = "Restart R and run {.code sd_install(fresh = TRUE)} before using rdiffusers."),
        class = "rdiffusers_error_install"
      )
    }
    # The Python to rebuild with, before the working environment is gone.
    starter <- find_starter()
    say("Deleting {.file {dir}}.")
    remove_path(dir, recursive = TRUE)
  }

  if (!venv_has_python(dir)) {
    if (dir.exists(dir) && !is_our_venv(dir) &&
        length(list.files(dir, all.files = TRUE, no.. = TRUE)) > 0) {
      # Never build into (and so mark as ours, deletable) a folder with
      # someone's files in it.
      sd_abort(
        c("{.file {dir}} exists and is not a Python environment.",
          i = "Choose another {.arg envname}, or an empty or new folder."),
        class = "rdiffusers_error_install"
      )
    }
    starter <- starter %||% find_starter()
    say("Creating virtual environment {.file {dir}} with {.file {starter}}.")
    dir.create(dir, recursive = TRUE, showWarnings = FALSE)
    # The marker first: the folder is ours from now on, so a failed creation
    # can be removed (here, or later with fresh = TRUE).
    write_marker(dir)
    # An environment made by this call is removed again unless it is
    # complete, pins installed: a half one would be chosen next time (it is
    # the default env) and fail there.
    complete <- FALSE
    on.exit(if (!complete) remove_path(dir, recursive = TRUE), add = TRUE)  # error or interrupt
    run_python(starter, c("-m", "venv", dir), quiet = quiet)
  } else {
    complete <- TRUE  # not ours to remove
    say("Updating existing environment {.file {dir}}.")
    # What is wrong with it, and the way out when it is not ours to rebuild.
    problem <- if (!python_version_ok(venv_python_path(dir))) {
      c("has a Python older than {python_min}, which the pinned packages need.",
        "Choose another {.arg envname}.")
    } else if (!pip_works(venv_python_path(dir))) {
      c("has no working {.code pip}.", "Repair or delete it, or choose another {.arg envname}.")
    }
    if (!is.null(problem)) {
      sd_abort(
        c(paste("The environment {.file {dir}}", problem[[1]]),
          i = if (is_our_venv(dir)) "Recreate it with {.code sd_install(fresh = TRUE)}." else problem[[2]]),
        class = "rdiffusers_error_install"
      )
    }
  }
  env_python <- venv_python_path(dir)

  reqs <- requirements()
  is_torch <- grepl("^torch([=<>!~ ]|$)", reqs)
  pip <- function(args) {
    run_python(env_python, c("-m", "pip", "install", if (quiet) "--quiet",
                             "--disable-pip-version-check", args, pip_extra),
               quiet = quiet, call = call)
  }

  say("Installing {.pkg {reqs[is_torch]}}{if (is.null(torch_index)) '' else paste0(' from ', torch_index)}.")
  pip(c(reqs[is_torch], if (!is.null(torch_index)) c("--index-url", torch_index)))
  say("Installing {.pkg {reqs[!is_torch]}}.")
  pip(reqs[!is_torch])
  complete <- TRUE

  overrides <- c("RDIFFUSERS_PYTHON", "RETICULATE_PYTHON")
  overrides <- overrides[nzchar(Sys.getenv(overrides))]
  if (length(overrides) && !quiet) {
    cli::cli_alert_warning(
      "{.envvar {overrides}} {?is/are} set and take{?s/} precedence over {.file {dir}}; unset {?it/them} to use the new environment."
    )
  }
  if (!quiet) {
    if (identical(envname, sd_envname())) {
      cli::cli_alert_success("rdiffusers' Python environment is ready. Restart R to use it.")
    } else {
      cli::cli_alert_success(paste0(
        "The environment is ready. To use it, set {.envvar RDIFFUSERS_PYTHON} to ",
        "{.file {env_python}} (e.g. in {.file ~/.Renviron}) and restart R."
      ))
    }
  }
  invisible(env_python)
}

marker_file <- function(dir) file.path(dir, "rdiffusers-env.txt")

# Folders never deleted, whatever marker they hold: home, its parent, a root.
protected_dir <- function(target) {
  home <- normalizePath("~", winslash = "/", mustWork = FALSE)
  target %in% c(home, dirname(home), "/") || dirname(target) == target
}

# The executable of the Python running in this session, or NULL.
running_python <- function() {
  if (reticulate::py_available(initialize = FALSE)) py_exe_quiet()
}

write_marker <- function(dir) {
  writeLines(c(
    "This Python environment was created by rdiffusers::sd_install().",
    "sd_install(fresh = TRUE) may delete and recreate it.",
    paste("created:", format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC")),
    paste("rdiffusers:", utils::packageVersion("rdiffusers"))
  ), marker_file(dir))
}

is_our_venv <- function(dir) file.exists(marker_file(dir))

pip_works <- function(python) {
  out <- suppressWarnings(tryCatch(
    system2(python, c("-m", "pip", "--version"), stdout = FALSE, stderr = FALSE),
    error = function(e) 1L
  ))
  identical(as.integer(out), 0L)
}

venv_python_path <- function(dir) {
  file.path(dir, if (is_windows()) "Scripts/python.exe" else "bin/python")
}

venv_has_python <- function(dir) file.exists(venv_python_path(dir))

find_starter_python <- function(call = caller_env()) {
  starter <- get0("virtualenv_starter", envir = asNamespace("reticulate"), inherits = FALSE)
  if (is.function(starter)) {
    found <- tryCatch(starter(paste0(">=", python_min)), error = function(e) NULL)
    if (length(found) && !is.na(found)) return(found)
  }
  # reticulate < 1.34 has no virtualenv_starter(): look on PATH, newest
  # first (python3 may be older than a python3.12 beside it).
  for (cand in c(sprintf("python3.%d", 14:11), "python3", "python")) {
    path <- Sys.which(cand)
    if (nzchar(path) && python_version_ok(path)) return(unname(path))
  }
  sd_abort(
    c("No Python >= {python_min} found to create the environment with.",
      i = "Install Python (e.g. {.run reticulate::install_python()}) or pass {.arg python}."),
    class = "rdiffusers_error_python",
    call = call
  )
}

# The oldest Python the pinned packages (requirements.txt) install on:
# diffusers 0.42, transformers 5, numpy 2.4 and Pillow 13 need 3.11.
python_min <- "3.11"

python_version_ok <- function(python) {
  code <- paste0("import sys; print(sys.version_info >= (", sub(".", ", ", python_min, fixed = TRUE), "))")
  out <- suppressWarnings(tryCatch(
    system2(python, c("-c", shQuote(code)),
            stdout = TRUE, stderr = FALSE),
    error = function(e) ""
  ))
  identical(out, "True")
}

check_python_version <- function(python, call = caller_env()) {
  if (!python_version_ok(python)) {
    sd_abort(
      "{.file {python}} is not a working Python >= {python_min}.",
      class = "rdiffusers_error_python",
      call = call
    )
  }
}

run_python <- function(python, args, quiet = FALSE, call = caller_env()) {
  out <- if (quiet) TRUE else ""
  # R puts its own library directories first on LD_LIBRARY_PATH. A Python
  # that links libpython dynamically can then load another build's libpython
  # (seen with pyenv on Debian: pip fails with "SSL module is not
  # available"). pip needs none of R's libraries, so run it without them.
  old_ld <- Sys.getenv("LD_LIBRARY_PATH", NA)
  if (!is.na(old_ld)) {
    Sys.unsetenv("LD_LIBRARY_PATH")
    on.exit(Sys.setenv(LD_LIBRARY_PATH = old_ld), add = TRUE)
  }
  status <- suppressWarnings(system2(python, shQuote(args), stdout = out, stderr = out))
  status <- attr(status, "status") %||% (if (is.numeric(status)) status else 0L)
  if (!identical(as.integer(status), 0L)) {
    sd_abort(
      c("Installing rdiffusers' Python environment failed.",
        x = "{.code {python} {paste(args, collapse = ' ')}} exited with status {status}.",
        i = if (quiet) "Run again with {.code quiet = FALSE} to see pip's output."
            else "pip's messages above say why (often: no network, or no wheel for this Python).",
        i = "A new environment is removed again; an existing one can be rebuilt with {.code sd_install(fresh = TRUE)}."),
      class = "rdiffusers_error_install",
      call = call
    )
  }
  invisible()
}
