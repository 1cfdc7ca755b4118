# Errors -----------------------------------------------------------------

# Every error the package signals has class `rdiffusers_error` plus a
# subclass saying what went wrong:
#   rdiffusers_error_input   bad argument value (fix the call)
#   rdiffusers_error_python  Python missing or broken (fix the environment)
#   rdiffusers_error_model   model cannot be found or loaded
#   rdiffusers_error_lora    LoRA file rejected
#   rdiffusers_error_file    file cannot be read or written
#     rdiffusers_error_exists  (with _file) the file to write exists already
#   rdiffusers_error_metadata malformed metadata
#   rdiffusers_error_install sd_install() failed or refused
#   rdiffusers_error_reproduce an image cannot be regenerated exactly
# An interrupt during generation is signalled as `rdiffusers_interrupt`.
sd_abort <- function(message, class = NULL, ..., call = caller_env(),
                     .envir = parent.frame()) {
  cli::cli_abort(
    message,
    class = c(class, "rdiffusers_error"),
    ...,
    call = call,
    .envir = .envir
  )
}

abort_input <- function(message, ..., call = caller_env(), .envir = parent.frame()) {
  sd_abort(message, class = "rdiffusers_error_input", ..., call = call, .envir = .envir)
}

# rawToChar() that cannot fail: NA when the bytes hold a NUL (no signature,
# chunk type or keyword may contain one; a hostile file may).
raw_chr <- function(x) if (any(x == as.raw(0))) NA_character_ else rawToChar(x)

# Drops NULL elements of a list.
compact <- function(x) x[!vapply(x, is.null, logical(1))]

# Checks shared by every exported function --------------------------------

check_string <- function(x, allow_null = FALSE, arg = caller_arg(x),
                         call = caller_env()) {
  if (allow_null && is.null(x)) {
    return(invisible(x))
  }
  if (!is.character(x) || length(x) != 1 || is.na(x) || !nzchar(x)) {
    abort_input(
      "{.arg {arg}} must be a single non-empty string{if (allow_null) ' or NULL' else ''}, not {.obj_type_friendly {x}}.",
      call = call
    )
  }
  invisible(x)
}

check_choice <- function(x, choices, arg = caller_arg(x), call = caller_env()) {
  check_string(x, arg = arg, call = call)
  if (!x %in% choices) {
    abort_input("{.arg {arg}} must be one of {.or {.val {choices}}}, not {.val {x}}.", call = call)
  }
  invisible(x)
}

check_flag <- function(x, arg = caller_arg(x), call = caller_env()) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    abort_input("{.arg {arg}} must be {.code TRUE} or {.code FALSE}, not {.obj_type_friendly {x}}.",
                call = call)
  }
  invisible(x)
}

# Stops unless `path` is an existing file. `what` is how the message names
# it, a cli template (e.g. "LoRA file").
check_file_exists <- function(path, what, class, call = caller_env()) {
  problem <- if (dir.exists(path)) "is a directory, not a file" else if (!file.exists(path)) "does not exist"
  if (!is.null(problem)) {
    sd_abort(paste0(what, " {.file {path}} ", problem, "."), class = class, call = call)
  }
  invisible(path)
}

# An absolute path for a file or folder that may not exist yet: "~"
# expanded, a relative path taken from the working directory now (Python
# would read "~" literally, and a relative path from its own later cwd).
absolute_path <- function(path) {
  path <- path.expand(path)
  if (!is_absolute(path)) path <- file.path(getwd(), path)
  normalizePath(path, winslash = "/", mustWork = FALSE)
}

is_absolute <- function(path) grepl("^([/\\\\]|[A-Za-z]:)", path)

# unlink() without its wildcard expansion: a path the user chose may hold
# "*", "?" or "[", and unlink("out[2]") would delete "out2". (expand = FALSE
# also leaves "~" alone, so that is expanded here.)
remove_path <- function(path, recursive = FALSE) {
  unlink(path.expand(path), recursive = recursive, expand = FALSE)
}

# Whether a file can be created in `dir`, found by creating one: permission
# bits do not tell (root, read-only mounts, /proc).
dir_writable <- function(dir) {
  probe <- tempfile(".rdiffusers-probe-", tmpdir = dir)
  ok <- suppressWarnings(file.create(probe))
  if (ok) remove_path(probe)
  ok
}
