# Replaces functions in the package namespace for the rest of the calling
# test, like testthat::local_mocked_bindings() (testthat >= 3.1.7), which
# Debian's testthat 3.1.6 does not have.
local_ns_mock <- function(..., .env = parent.frame()) {
  ns <- asNamespace("rdiffusers")
  # One frame per function: the deferred restore must see its own `name`
  # and `old`, not the loop's last ones.
  mock_one <- function(name, value) {
    old <- get(name, envir = ns, inherits = FALSE)
    locked <- bindingIsLocked(name, ns)
    if (locked) unlockBinding(name, ns)
    assign(name, value, envir = ns)
    withr::defer({
      if (bindingIsLocked(name, ns)) unlockBinding(name, ns)
      assign(name, old, envir = ns)
      if (locked) lockBinding(name, ns)
    }, envir = .env)
  }
  new <- list(...)
  for (name in names(new)) mock_one(name, new[[name]])
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
