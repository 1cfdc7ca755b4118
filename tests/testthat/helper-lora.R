# Tiny LoRA files for the tests, made offline by the Python helper
# (rdiffusers_py.lora.make_test_lora) from the tiny models' own configs.
# Built once per test run into the session's temporary directory.

test_lora_dir <- function() {
  dir <- file.path(tempdir(), "rdiffusers-test-loras")
  dir.create(dir, showWarnings = FALSE)
  dir
}

# Path of a small random LoRA for `model` ("tiny" or "tiny-sdxl").
# ext = "bin" writes a pickle file; target = "text_encoder" a text-encoder LoRA.
test_lora <- function(name, seed = 1, model = "tiny", target = "unet",
                      ext = "safetensors") {
  path <- file.path(test_lora_dir(), paste0(name, ".", ext))
  if (!file.exists(path)) {
    model_dir <- py_call("tiny_model", model, sd_cache_dir())
    py_lora <- reticulate::import_from_path(
      "rdiffusers_py.lora", path = system.file("python", package = "rdiffusers")
    )
    py_lora$make_test_lora(model_dir, path, seed = as.integer(seed), target = target)
  }
  path
}

# A valid .safetensors file whose tensors are not LoRA tensors.
test_non_lora <- function() {
  path <- file.path(test_lora_dir(), "not-a-lora.safetensors")
  if (!file.exists(path)) {
    py_lora <- reticulate::import_from_path(
      "rdiffusers_py.lora", path = system.file("python", package = "rdiffusers")
    )
    py_lora$make_non_lora_file(path)
  }
  path
}

# Decoded pixels of an image file, for exact comparisons.
pixels_of <- function(img) png::readPNG(if (is_sd_image(img)) img$path else img)
