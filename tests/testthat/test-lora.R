test_that("LoRA arguments are checked in R before Python starts", {
  lora <- withr::local_tempfile(fileext = ".safetensors", lines = "x")
  pickle <- withr::local_tempfile(fileext = ".bin", lines = "x")
  txt <- withr::local_tempfile(fileext = ".txt", lines = "x")
  expect_error(sd_load_lora(file.path(tempdir(), "absent.safetensors")),
               class = "rdiffusers_error_lora")
  expect_error(sd_load_lora(file.path(tempdir(), "absent.safetensors")),
               class = "rdiffusers_error_input")
  expect_error(sd_load_lora(tempdir()), "is a directory", class = "rdiffusers_error_lora")
  expect_error(sd_load_lora(pickle), class = "rdiffusers_error_lora")
  expect_error(sd_load_lora(txt), class = "rdiffusers_error_lora")
  expect_error(sd_load_lora(lora, scale = NA), class = "rdiffusers_error_input")
  expect_error(sd_load_lora(lora, scale = Inf), class = "rdiffusers_error_input")
  expect_error(sd_load_lora(lora, scale = "1"), class = "rdiffusers_error_input")
  expect_error(sd_load_lora(lora, adapter_name = "my.style"), class = "rdiffusers_error_input")
  expect_error(sd_load_lora(lora, adapter_name = "1st"), class = "rdiffusers_error_input")
  expect_error(sd_load_lora(lora, trusted = NA), class = "rdiffusers_error_input")
  expect_error(sd_load_lora(lora, stepz = 2), class = "rdiffusers_error_input")
  expect_error(sd_lora_scale("a", c(1, 2)), class = "rdiffusers_error_input")
  expect_error(sd_lora_scale("a", NA_real_), class = "rdiffusers_error_input")
  expect_error(sd_lora_scale("a", Inf), "finite", class = "rdiffusers_error_input")
  expect_error(sd_lora_scale(c("a", "a"), c(1, 2)), "duplicates", class = "rdiffusers_error_input")
  # File types are told by extension, whatever its case.
  upper <- file.path(withr::local_tempdir(), "STYLE.SAFETENSORS")
  writeLines("x", upper)
  expect_identical(check_lora_path(upper, trusted = FALSE), normalizePath(upper, winslash = "/"))
  # A relative path reaches Python as the full one.
  expect_identical(withr::with_dir(dirname(upper), check_lora_path("STYLE.SAFETENSORS", FALSE)),
                   normalizePath(upper, winslash = "/"))
  expect_error(sd_unload_lora("bad name"), class = "rdiffusers_error_input")
})

test_that("listing and unloading LoRAs, listing and freeing models never start Python", {
  skip_if_not_installed_ci("callr")
  res <- r_without_python(
    function() {
      unload <- tryCatch(rdiffusers::sd_unload_lora("style", model = "tiny"), error = identity)
      scale <- tryCatch(rdiffusers::sd_lora_scale("style", 0.5, model = "tiny"), error = identity)
      list(rows = nrow(rdiffusers::sd_loras("tiny")),
           all = rdiffusers::sd_unload_lora(model = "tiny"),
           pipelines = nrow(rdiffusers::sd_pipelines()),
           freed = c(rdiffusers::sd_free("tiny"), rdiffusers::sd_free()),
           class = c(class(unload), class(scale)),
           two = conditionMessage(tryCatch(rdiffusers::sd_unload_lora(c("a", "b"), model = "tiny"),
                                           error = identity)),
           started = reticulate::py_available(initialize = FALSE))
    }
  )
  expect_identical(res$rows, 0L)
  expect_identical(res$all, character())
  expect_identical(res$pipelines, 0L)
  expect_identical(res$freed, c(0L, 0L))
  expect_identical(sum(res$class == "rdiffusers_error_input"), 2L)
  expect_match(res$two, "No LoRAs named .* are loaded")
  expect_false(res$started)
})

test_that("refusals explain the risk and the fix", {
  pickle <- withr::local_tempfile(pattern = "style", fileext = ".ckpt", lines = "x")
  expect_snapshot(error = TRUE, transform = function(x) gsub("'?[^ ]*style[^ ]*ckpt'?", "<file>", x), {
    sd_load_lora(pickle)
  })
})

gen <- function(seed = 1, ...) {
  sd_generate("a castle", model = "tiny", width = 64, height = 64, steps = 2,
              seed = seed, progress = FALSE, ...)
}

test_that("a LoRA changes the image, scale 0 and unloading restore it exactly", {
  skip_if_no_python()
  withr::defer(sd_unload_lora(model = "tiny"))
  base <- pixels_of(gen())
  loras <- sd_load_lora(test_lora("style-a", seed = 1), model = "tiny")
  expect_identical(loras$name, "style_a")
  styled <- gen()
  expect_false(identical(pixels_of(styled), base))
  sd_lora_scale("style_a", 0, model = "tiny")
  expect_identical(pixels_of(gen()), base)
  sd_lora_scale("style_a", 1, model = "tiny")
  expect_identical(pixels_of(gen()), pixels_of(styled))
  expect_identical(sd_unload_lora(model = "tiny"), "style_a")
  expect_identical(pixels_of(gen()), base)
  expect_identical(nrow(sd_loras("tiny")), 0L)
})

test_that("LoRA functions act on the pipeline the optimize option selects", {
  skip_if_no_python()
  mode <- setdiff(c("none", "bf16"), getOption("rdiffusers.optimize", "auto"))[[1]]
  withr::local_options(rdiffusers.optimize = mode)
  withr::defer(sd_unload_lora(model = "tiny"))
  base <- gen()
  cached <- sd_pipelines()
  sd_load_lora(test_lora("style-a", seed = 1), model = "tiny")
  # No second copy of the model was loaded for the LoRA.
  expect_identical(sd_pipelines(), cached)
  styled <- gen()
  expect_identical(styled$meta$optimize, mode)
  expect_identical(vapply(styled$meta$loras, `[[`, "", "name"), "style_a")
  expect_false(identical(pixels_of(styled), pixels_of(base)))
  expect_identical(sd_loras("tiny")$name, "style_a")
  expect_identical(sd_lora_scale("style_a", 0, model = "tiny")$scale, 0)
  expect_identical(pixels_of(gen()), pixels_of(base))
  expect_identical(sd_unload_lora(model = "tiny"), "style_a")
})

test_that("stacked LoRAs keep their own scales and are recorded in the metadata", {
  skip_if_no_python()
  withr::defer(sd_unload_lora(model = "tiny"))
  a <- test_lora("style-a", seed = 1)
  b <- test_lora("style-b", seed = 2)
  sd_load_lora(a, model = "tiny", adapter_name = "a")
  only_a <- pixels_of(gen())
  loras <- sd_load_lora(b, scale = 0.5, model = "tiny", adapter_name = "b")
  expect_identical(loras$name, c("a", "b"))
  expect_identical(loras$scale, c(1, 0.5))
  both <- gen()
  expect_false(identical(pixels_of(both), only_a))
  meta <- both$meta$loras
  expect_length(meta, 2)
  expect_identical(meta[[2]]$name, "b")
  expect_identical(meta[[2]]$scale, 0.5)
  expect_identical(meta[[2]]$sha256, loras$sha256[[2]])
  expect_match(meta[[2]]$sha256, "^[0-9a-f]{64}$")
  # A1111 and Civitai find a LoRA by a hash of its tensors, after the header.
  expect_match(meta[[2]]$a1111_hash, "^[0-9a-f]{12}$")
  expect_false(identical(meta[[2]]$a1111_hash, substr(meta[[2]]$sha256, 1, 12)))
  expect_match(attr(png_read_meta(both), "chunks")[["parameters"]],
               paste0("Lora hashes: \"a: ", meta[[1]]$a1111_hash, ", b: ", meta[[2]]$a1111_hash, "\""),
               fixed = TRUE)
  # Named scales are matched by name, not position.
  scales <- sd_lora_scale(c("a", "b"), c(b = 0.2, a = 0.9), model = "tiny")
  expect_identical(scales$scale, c(0.9, 0.2))
  expect_error(sd_lora_scale(c("a", "b"), c(a = 1, c = 2), model = "tiny"),
               "names of `scale`", class = "rdiffusers_error_input")
  # One named scale must name the one LoRA too.
  expect_error(sd_lora_scale("a", c(c = 0.3), model = "tiny"),
               "names of `scale`", class = "rdiffusers_error_input")
  sd_lora_scale(c("a", "b"), c(1, 0.5), model = "tiny")
  # The same file under its loaded name only changes the scale.
  sd_load_lora(b, scale = 0, model = "tiny", adapter_name = "b")
  expect_identical(pixels_of(gen()), only_a)
  # The values name the LoRAs, not the names of a named vector.
  sd_unload_lora(c(a = "b"), model = "tiny")
  expect_identical(sd_loras("tiny")$name, "a")
  expect_identical(pixels_of(gen()), only_a)
})

test_that("bad and unsafe LoRA files are rejected and leave the pipeline unchanged", {
  skip_if_no_python()
  withr::defer(sd_unload_lora(model = "tiny"))
  text <- withr::local_tempfile(fileext = ".safetensors", lines = "not a tensor file")
  bad <- list(
    not_lora = test_non_lora(),
    text = text,
    sdxl = test_lora("xl-style", seed = 5, model = "tiny-sdxl"),
    pickle = test_lora("pickled", seed = 4, ext = "bin")
  )
  for (preload in c(FALSE, TRUE)) {
    if (preload) sd_load_lora(test_lora("style-a", seed = 1), model = "tiny")
    before <- pixels_of(gen())
    loras <- sd_loras("tiny")
    for (f in bad) {
      expect_error(sd_load_lora(f, model = "tiny"), class = "rdiffusers_error_lora")
      expect_identical(sd_loras("tiny"), loras)
    }
    expect_identical(pixels_of(gen()), before)
  }
})

test_that("a pickle LoRA loads only with trusted = TRUE", {
  skip_if_no_python()
  withr::defer(sd_unload_lora(model = "tiny"))
  base <- pixels_of(gen())
  sd_load_lora(test_lora("pickled", seed = 4, ext = "bin"), model = "tiny", trusted = TRUE)
  expect_false(identical(pixels_of(gen()), base))
  sd_unload_lora(model = "tiny")
  expect_identical(pixels_of(gen()), base)
})

test_that("a LoRA on one model does not leak into another cached model", {
  skip_if_no_python()
  withr::defer(sd_unload_lora(model = "tiny"))
  other <- function() {
    sd_generate("a castle", model = "tiny-sdxl", width = 64, height = 64, steps = 2,
                seed = 1, progress = FALSE)
  }
  base_other <- pixels_of(other())
  sd_load_lora(test_lora("style-a", seed = 1), model = "tiny")
  expect_identical(pixels_of(other()), base_other)
  expect_identical(nrow(sd_loras("tiny-sdxl")), 0L)
  expect_length(other()$meta$loras, 0)
})

test_that("an SDXL LoRA works on the tiny SDXL model", {
  skip_if_no_python()
  withr::defer(sd_unload_lora(model = "tiny-sdxl"))
  gen_xl <- function() {
    sd_generate("a castle", model = "tiny-sdxl", width = 64, height = 64, steps = 2,
                seed = 1, progress = FALSE)
  }
  base <- pixels_of(gen_xl())
  sd_load_lora(test_lora("xl-style", seed = 5, model = "tiny-sdxl"), model = "tiny-sdxl")
  expect_false(identical(pixels_of(gen_xl()), base))
  sd_unload_lora(model = "tiny-sdxl")
  expect_identical(pixels_of(gen_xl()), base)
})

test_that("LoRAs apply to img2img on the same model", {
  skip_if_no_python()
  withr::defer(sd_unload_lora(model = "tiny"))
  init <- gen(seed = 9)
  i2i <- function() {
    sd_img2img(init, "a castle", model = "tiny", strength = 1, steps = 2, seed = 3,
               progress = FALSE)
  }
  base <- pixels_of(i2i())
  sd_load_lora(test_lora("style-a", seed = 1), model = "tiny")
  styled <- i2i()
  expect_false(identical(pixels_of(styled), base))
  expect_identical(styled$meta$loras[[1]]$name, "style_a")
  sd_unload_lora(model = "tiny")
  expect_identical(pixels_of(i2i()), base)
})
