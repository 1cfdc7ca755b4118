.onLoad <- function(libname, pkgname) {
  # Declares the helper module without starting Python: reticulate imports it
  # on first use, after python.R has chosen which Python to use.
  the$py <- reticulate::import_from_path(
    "rdiffusers_py",
    path = system.file("python", package = pkgname),
    delay_load = TRUE
  )
  invisible()
}
