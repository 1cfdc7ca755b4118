# Adds up pytest's JUnit XML and the R-side count files in the directory given
# as the first argument, prints the one closing line "N passed, N failed,
# N skipped" and exits non-zero when anything failed or did not run.
dir <- commandArgs(TRUE)[1]
n <- c(passed = 0, failed = 0, skipped = 0)

xml <- file.path(dir, "pytest.xml")
if (file.exists(xml)) {
  lines <- readLines(xml, warn = FALSE)
  suite <- regmatches(lines, regexpr("<testsuite [^>]*>", lines))[1]
  attr_num <- function(name) {
    m <- regmatches(suite, regexpr(paste0(" ", name, "=\"[0-9]+\""), suite))
    if (length(m) == 0) 0 else as.numeric(gsub("[^0-9]", "", m))
  }
  bad <- attr_num("failures") + attr_num("errors")
  skipped <- attr_num("skipped")
  n <- n + c(attr_num("tests") - bad - skipped, bad, skipped)
} else {
  n["failed"] <- n["failed"] + 1 # pytest did not run at all
}

for (f in c("testthat.tsv", "check.tsv")) {
  p <- file.path(dir, f)
  if (file.exists(p)) {
    n <- n + unlist(utils::read.delim(p)[1, names(n)])
  } else {
    n["failed"] <- n["failed"] + 1 # that stage did not run at all
  }
}
cat(sprintf("%d passed, %d failed, %d skipped\n", n[["passed"]], n[["failed"]], n[["skipped"]]))
quit(status = if (n[["failed"]] > 0) 1 else 0)
