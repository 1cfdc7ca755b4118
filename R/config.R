#' Is the Python stack for rdiffusers available?
#'
#' Chooses Python the way every rdiffusers function does (see [sd_config()])
#' and checks that torch, diffusers and transformers are installed there,
#' without importing them (so it takes well under a second; a broken install
#' shows up at the first generation, and in [sd_config()]). It installs
#' nothing (with reticulate 1.41 or later and no other Python, the
#' `py_require()` environment is made by the first generation) and never
#' errors, which makes it suitable for `@examplesIf`, `skip_if_not()` and
#' `if ()`.
#'
#' @returns `TRUE` or `FALSE`.
#' @family setup
#' @export
#' @examples
#' sd_available()
sd_available <- function() {
  tryCatch({
    choice <- py_choose(install = FALSE)
    isTRUE(choice$ok) && length(missing_py_stack()) == 0
  }, error = function(e) FALSE)
}

#' Python configuration used by rdiffusers
#'
#' Reports which Python rdiffusers uses and why, the versions of the Python
#' stack, the devices torch can use, the pipelines in memory, and, when
#' something is missing, the command that fixes it. It never errors, so it is
#' the first thing to run (and to paste into a bug report) when something does
#' not work.
#'
#' Python is chosen in this order: the `RDIFFUSERS_PYTHON` environment
#' variable (a Python executable or virtualenv directory); `RETICULATE_PYTHON`;
#' the virtualenv `r-rdiffusers` created by [sd_install()]; and, with
#' reticulate 1.41 or later, an ephemeral environment from
#' `reticulate::py_require()`, which the first generation makes (installing
#' the pinned packages; `sd_config()` itself installs nothing). Once Python
#' has started in an R session it cannot be changed without restarting R.
#'
#' @returns An object of class `sd_config`: a list with `python` (path),
#'   `how` (how it was chosen), `searched`, `error`, `versions` (named list:
#'   R-side `reticulate` and `rdiffusers`, Python-side `python`, `torch`,
#'   `diffusers`, ...), `devices`, `pipelines` (see [sd_pipelines()]),
#'   `usable` (`TRUE`/`FALSE`) and `fix` (what to run or do, or `NULL`).
#' @family setup
#' @export
#' @examples
#' sd_config()
sd_config <- function() {
  choice <- tryCatch(py_choose(install = FALSE), error = function(e) {
    list(ok = FALSE, how = "none", error = conditionMessage(e),
         searched = character(), python = NA_character_)
  })
  versions <- list(
    rdiffusers = as.character(utils::packageVersion("rdiffusers")),
    reticulate = as.character(utils::packageVersion("reticulate"))
  )
  out <- list(
    python = choice$python %||% NA_character_,
    how = choice$how,
    searched = choice$searched,
    error = choice$error,
    versions = versions,
    devices = NULL,
    pipelines = NULL,
    usable = FALSE,
    fix = NULL
  )
  if (!isTRUE(choice$ok)) {
    out$fix <- python_fix(choice)
    return(new_sd_config(out))
  }
  fix_install <- python_fix(choice, started = TRUE)
  missing <- missing_py_stack()
  if (length(missing)) {
    out$error <- paste0("Python modules missing: ", paste(missing, collapse = ", "), ".")
    out$fix <- fix_install
    return(new_sd_config(out))
  }
  py_info <- tryCatch(
    list(
      versions = py_call("versions"),
      devices = py_call("devices"),
      pipelines = py_call("cached_pipelines")
    ),
    error = function(e) e
  )
  if (inherits(py_info, "error")) {
    out$error <- conditionMessage(py_info)
    out$fix <- fix_install
    return(new_sd_config(out))
  }
  out$versions <- c(versions, py_info$versions)
  out$devices <- py_info$devices
  out$pipelines <- pipelines_df(py_info$pipelines)
  out$usable <- TRUE
  new_sd_config(out)
}

new_sd_config <- function(x) {
  structure(x, class = "sd_config")
}

#' @export
format.sd_config <- function(x, ...) {
  line <- function(label, value) sprintf("%-12s %s", paste0(label, ":"), value)
  v <- x$versions
  vtext <- function(names) {
    names <- intersect(names, names(v))
    vals <- vapply(names, function(n) v[[n]] %||% "missing", character(1))
    paste(paste(names, vals), collapse = ", ")
  }
  out <- c(
    "<rdiffusers configuration>",
    line("usable", if (isTRUE(x$usable)) "yes" else "no"),
    line("python", if (is.na(x$python)) "(none)" else x$python),
    line("chosen by", x$how)
  )
  if (!isTRUE(x$usable) && length(x$searched)) {
    out <- c(out, line("searched", paste(x$searched, collapse = "; ")))
  }
  out <- c(out, line("R side", vtext(c("rdiffusers", "reticulate"))))
  py_names <- setdiff(names(v), c("rdiffusers", "reticulate"))
  if (length(py_names)) {
    out <- c(out, line("Python side", vtext(py_names)))
  }
  if (!is.null(x$devices)) {
    out <- c(out, line("devices", paste0(
      paste(unlist(x$devices$available), collapse = ", "),
      " (default ", x$devices$default %||% "?", ", ",
      x$devices$torch_threads %||% "?", " torch threads)"
    )))
    if (identical(x$devices$blas, "host")) {
      # torch was imported before rdiffusers could keep it on its own BLAS.
      out <- c(out, line("warning", paste(
        "torch was imported before rdiffusers and uses R's BLAS: float32 work is much",
        "slower and its pixels can differ from other sessions' (recorded as blas = \"host\").",
        "Restart R and use rdiffusers before importing torch yourself."
      )))
    }
  }
  if (!is.null(x$pipelines)) {
    out <- c(out, line("pipelines", if (nrow(x$pipelines)) {
      paste(x$pipelines$model, collapse = ", ")
    } else {
      "none loaded"
    }))
  }
  if (!is.null(x$error) && length(x$error)) {
    out <- c(out, line("problem", x$error))
  }
  if (!is.null(x$fix)) {
    out <- c(out, line("fix", x$fix))
  }
  out
}

#' @export
print.sd_config <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}
