# Replaces functions in the package namespace for the rest of the calling
# test, like testthat::local_mocked_bindings() (testthat >= 3.1.7), which
# Debian's testthat 3.1.6 does not have.
local_ns_mock <- function(..., .env = parent.frame()) {
  ns <- asNamespace("rdiffusers")
  new <- list(...)
  for (name in names(new)) {
    old <- get(name, envir = ns, inherits = FALSE)
    locked <- bindingIsLocked(name, ns)
    if (locked) unlockBinding(name, ns)
    assign(name, new[[name]], envir = ns)
    withr::defer({
      if (bindingIsLocked(name, ns)) unlockBinding(name, ns)
      assign(name, old, envir = ns)
      if (locked) lockBinding(name, ns)
    }, envir = .env)
  }
  invisible()
}

# The messages of class `class` that `expr` signals (muffled). testthat
# 3.1.6's expect_no_message() lets messages through without failing.
messages_of <- function(expr, class = "message") {
  got <- character()
  withCallingHandlers(expr, message = function(m) {
    if (inherits(m, class)) {
      got <<- c(got, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  })
  got
}
