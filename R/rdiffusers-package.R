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
