#' @section Errors and warnings:
#' Every error rdiffusers signals has class `rdiffusers_error` and one of
#' these, so that code can handle each kind with [tryCatch()]:
#'
#' | class | what went wrong |
#' |---|---|
#' | `rdiffusers_error_input` | an argument's value (fix the call) |
#' | `rdiffusers_error_model` | a model cannot be found or loaded |
#' | `rdiffusers_error_lora` | a LoRA file was refused |
#' | `rdiffusers_error_file` | a file cannot be read or written; also `rdiffusers_error_exists` when the file to write exists |
#' | `rdiffusers_error_metadata` | the metadata asked for is not in the file |
#' | `rdiffusers_error_reproduce` | an image cannot be regenerated exactly |
#' | `rdiffusers_error_python` | Python is missing or broken |
#' | `rdiffusers_error_install` | [sd_install()] failed or refused |
#'
#' A generation stopped with Ctrl+C (Esc) signals `rdiffusers_interrupt`,
#' which holds the images already made. Warnings have class
#' `rdiffusers_warning`; those about unreadable metadata also
#' `rdiffusers_warning_metadata`.
#' @keywords internal
"_PACKAGE"

## usethis namespace: start
#' @importFrom rlang caller_arg caller_env %||%
#' @importFrom grDevices as.raster
## usethis namespace: end
NULL

# The package's one state environment: the lazily imported Python helper
# module, the Python that was chosen, and caches of cheap look-ups.
the <- new.env(parent = emptyenv())
