# A small tiny-model image for reproduction tests, in a temporary directory
# that lives as long as the calling test.
tiny_image <- function(model = "tiny", ..., seed = 11, dir = withr::local_tempdir(.local_envir = parent.frame())) {
  sd_generate("a lighthouse on a cliff", model = model, width = 64, height = 64,
              steps = 2, seed = seed, output_dir = dir, ...)
}
