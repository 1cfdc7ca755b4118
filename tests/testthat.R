library(testthat)
library(rdiffusers)

test_check("rdiffusers")
