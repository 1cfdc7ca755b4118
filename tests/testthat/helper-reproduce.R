# A small tiny-model image for reproduction tests, in a temporary directory
# that lives as long as the calling test.
tiny_image <- function(model = "tiny", ..., seed = 11, dir = withr::local_tempdir(.local_envir = parent.frame())) {
  sd_generate("a lighthouse on a cliff", model = model, width = 64, height = 64,
              steps = 2, seed = seed, output_dir = dir, ...)
}

# A copy of the tiny model's diffusers folder, as a local model of its own,
# in a folder named "model" in a temporary directory of the calling test.
local_model_copy <- function(env = parent.frame()) {
  dir <- file.path(withr::local_tempdir(.local_envir = env), "model")
  dir.create(dir)
  file.copy(list.files(sd_load_model("tiny")$model_path, full.names = TRUE), dir,
            recursive = TRUE)
  dir
}
