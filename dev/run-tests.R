# Runs the testthat suite against the installed package and writes the counts
# (one row: passed, failed, skipped -- counted per test_that() block) to the
# file named by the first argument.
out <- commandArgs(TRUE)[1]
# This is our own full run: snapshot tests run (testthat skips them "on CRAN"
# unless NOT_CRAN is set) and so does the real sd_install() test.
Sys.setenv(NOT_CRAN = "true", RDIFFUSERS_TEST_INSTALL = "true")
res <- testthat::test_dir(
  "tests/testthat",
  package = "rdiffusers",
  load_package = "installed",
  reporter = testthat::ProgressReporter$new(show_praise = FALSE),
  stop_on_failure = FALSE
)
df <- as.data.frame(res)
failed <- df$failed > 0 | df$error
skipped <- !failed & df$skipped
counts <- data.frame(
  passed = sum(!failed & !skipped),
  failed = sum(failed),
  skipped = sum(skipped)
)
utils::write.table(counts, out, sep = "\t", row.names = FALSE, quote = FALSE)
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n",
            counts$passed, counts$failed, counts$skipped))
