test_that("sd_reproduce() regenerates tiny SD1.5, SDXL and SD3 images bit-identically", {
  skip_if_no_python()
  for (model in c("tiny", "tiny-sdxl", "tiny-sd3")) {
    img <- tiny_image(model)
    out <- sd_reproduce(img$path, output_dir = withr::local_tempdir())
    expect_s3_class(out, "sd_reproduction")
    expect_true(out$identical, label = model)
    expect_match(format(out)[[1]], "Bit-identical to")
    expect_identical(nrow(out$differences), 0L)
    expect_identical(png::readPNG(out$image$path), png::readPNG(img$path))
    expect_identical(out$image$meta$pixel_sha256, img$meta$pixel_sha256)
    expect_identical(out$image$meta$reproduced_from$pixel_sha256, img$meta$pixel_sha256)
  }
})

test_that("a scheduler given by A1111 name is rebuilt from its recorded config", {
  skip_if_no_python()
  img <- tiny_image(scheduler = "DPM++ 2M Karras")
  # The sd_image itself stands for its file.
  out <- sd_reproduce(img, output_dir = withr::local_tempdir())
  expect_identical(out$original, img$path)
  expect_true(out$identical)
  expect_identical(out$image$meta$scheduler_config, img$meta$scheduler_config)
  # A relative path is kept absolute, so that plot() finds it after setwd().
  withr::with_dir(dirname(img$path), {
    rel <- sd_reproduce(basename(img$path), output_dir = withr::local_tempdir())
  })
  expect_identical(rel$original, normalizePath(img$path, "/"))
  withr::local_pdf(withr::local_tempfile(fileext = ".pdf"))
  expect_no_error(plot(rel))
})

test_that("a model's own scheduler without an A1111 name is rebuilt from its config", {
  skip_if_no_python()
  img <- tiny_image()
  meta <- img$meta
  meta$scheduler <- "SASolverScheduler"
  meta$scheduler_config[["_class_name"]] <- "SASolverScheduler"
  edited <- file.path(withr::local_tempdir(), "sa.png")
  png_write_meta(img$path, edited, meta = meta)
  expect_false("SASolverScheduler" %in% names(rdiffusers:::schedulers_list()))
  out <- sd_reproduce(edited, output_dir = withr::local_tempdir())
  expect_identical(out$image$meta$scheduler, "SASolverScheduler")
  expect_false(out$identical)
})

test_that("another model takes the recorded sampler with its own scheduler config", {
  skip_if_no_python()
  # The recorded config holds the old model's noise schedule (and would
  # hold its prediction type): a new model uses its own, same sampler.
  img <- tiny_image(scheduler = "Euler a")
  out <- sd_reproduce(img, model = "tiny-sdxl", output_dir = withr::local_tempdir())
  direct <- tiny_image("tiny-sdxl", scheduler = "Euler a", guidance_scale = img$meta$guidance_scale)
  expect_identical(out$image$meta$scheduler_config, direct$meta$scheduler_config)
  expect_identical(out$image$meta$pixel_sha256, direct$meta$pixel_sha256)
  expect_identical(recorded_sampler(list(sampler = "DPM++ 2M", schedule_type = "Karras",
                                         scheduler = "DPMSolverMultistepScheduler")),
                   "DPM++ 2M Karras")
  expect_identical(recorded_sampler(list(sampler = "Euler", schedule_type = "DDIM",
                                         scheduler = "EulerDiscreteScheduler")),
                   "EulerDiscreteScheduler")
  # An SD3 model needs a flow-matching sampler: an input error says so.
  expect_error(sd_reproduce(img, model = "tiny-sd3", output_dir = withr::local_tempdir()),
               "SD3", class = "rdiffusers_error_input")
})

test_that("overrides change the image and are recorded in the new file", {
  skip_if_no_python()
  img <- tiny_image()
  out <- sd_reproduce(img$path, steps = 3, output_dir = withr::local_tempdir())
  expect_false(out$identical)
  expect_true("steps" %in% out$differences$what)
  shown <- format(out)
  expect_match(shown[[1]], "Not identical: [0-9]+ pixels differ")
  expect_true(any(grepl("^  steps: [0-9]+ -> 3$", shown)))
  expect_output(print(out), "What differs:")
  back <- png_read_meta(out$image$path)
  expect_identical(back$steps, 3L)
  expect_identical(back$reproduced_from$overrides, list(steps = 3))
  expect_identical(back$reproduced_from$file, normalizePath(img$path, winslash = "/"))
  expect_match(format(out)[1], "Not identical")
})

test_that("a different stack is reported, not hidden", {
  skip_if_no_python()
  img <- tiny_image()
  meta <- img$meta
  meta$versions$torch <- "0.0.1"
  expect_identical(meta$blas, "torch")
  meta$blas <- "host"  # made where torch ran on R's BLAS
  edited <- file.path(withr::local_tempdir(), "edited.png")
  png_write_meta(img$path, edited, meta = meta)
  out <- sd_reproduce(edited, output_dir = withr::local_tempdir())
  expect_true(out$identical)
  expect_identical(out$differences$now[out$differences$what == "blas"], "torch")
  row <- out$differences[out$differences$what == "torch", ]
  expect_identical(row$original, "0.0.1")
  expect_identical(row$now, img$meta$versions$torch)
  expect_true(any(grepl("torch: 0.0.1 ->", format(out), fixed = TRUE)))
})

test_that("the pixels decide: a copy re-saved as RGBA or without a pixel hash still compares", {
  skip_if_no_python()
  img <- tiny_image()
  dir <- withr::local_tempdir()
  # `pixels` saved as `name`, with metadata `meta`: what an editor writes.
  resave <- function(pixels, name, meta = png_read_meta(img$path)) {
    bare <- file.path(dir, paste0(name, "-bare.png"))
    png::writePNG(pixels, bare)
    png_write_meta(bare, file.path(dir, paste0(name, ".png")), meta = meta)
  }
  pixels <- png::readPNG(img$path)
  rgba <- array(1, c(dim(pixels)[1:2], 4))
  rgba[, , 1:3] <- pixels
  # An opaque alpha channel added by an editor: the same image.
  out <- sd_reproduce(resave(rgba, "rgba"), output_dir = dir)
  expect_true(out$identical)
  expect_identical(out$pixels$differing, 0L)
  # One pixel made half transparent is one pixel that differs.
  rgba[3, 5, 4] <- 0.5
  out <- sd_reproduce(resave(rgba, "alpha"), output_dir = dir)
  expect_false(out$identical)
  expect_identical(out$pixels$differing, 1L)
  expect_match(format(out)[[1]], "1 pixel differs")

  # No recorded pixel hash: an unchanged file is identical, a changed one not.
  meta <- img$meta
  meta$pixel_sha256 <- NULL
  out <- sd_reproduce(resave(pixels, "nohash", meta), output_dir = dir)
  expect_true(out$identical)
  expect_match(format(out)[[1]], "Bit-identical")
  pixels[1, 1, 1] <- 1 - pixels[1, 1, 1]
  out <- sd_reproduce(resave(pixels, "edited", meta), output_dir = dir)
  expect_false(out$identical)
  expect_identical(out$pixels$differing, 1L)
})

test_that("a device this machine lacks is an error that names it", {
  skip_if_no_python()
  skip_if(sd_config()$usable && "cuda" %in% unlist(rdiffusers:::py_call("devices")$available))
  img <- tiny_image()
  meta <- img$meta
  meta$device <- "cuda"
  edited <- file.path(withr::local_tempdir(), "cuda.png")
  png_write_meta(img$path, edited, meta = meta)
  expect_error(sd_reproduce(edited), "was made on device", class = "rdiffusers_error_reproduce")
  # Asking for a missing device is a bad argument, not a fact about the file.
  expect_error(sd_reproduce(img$path, device = "cuda"), "\"cuda\" is not available on this machine",
               class = "rdiffusers_error_input")
  # An override runs it here anyway.
  out <- sd_reproduce(edited, device = "cpu", output_dir = withr::local_tempdir())
  expect_true(out$identical)
})

test_that("files without rdiffusers metadata and bad overrides are classed errors", {
  a1111 <- test_path("fixtures", "other-tools", "AUTOMATIC1111", "automatic1111_cropped.png")
  expect_error(sd_reproduce(a1111), class = "rdiffusers_error_reproduce")
  # A sweep grid (or an unknown task) says what it is instead of asking for inputs.
  src <- withr::local_tempfile(fileext = ".png")
  png::writePNG(array(0.5, c(4, 4, 3)), src)
  grid <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, grid, meta = list(task = "sweep", prompt = "a fox"))
  expect_snapshot(sd_reproduce(grid), error = TRUE,
                  transform = function(x) gsub("'[^']*\\.png'", "'<grid>.png'", x))
  other <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, other, meta = list(task = "upscale"))
  expect_error(sd_reproduce(other), class = "rdiffusers_error_reproduce")
  # Entries in a shape rdiffusers does not write (hand-edited or crafted):
  # named, before anything is loaded or written.
  base <- list(task = "txt2img", prompt = "a fox", seed = 1, steps = 2L)
  crafted <- list(list(loras = "x"), list(loras = list(list(path = "a.safetensors"))),
                  list(versions = "x"), list(scheduler_config = 3))
  for (edit in crafted) {
    png_write_meta(src, other, meta = utils::modifyList(base, edit), overwrite = TRUE)
    expect_error(sd_reproduce(other), names(edit), class = "rdiffusers_error_reproduce")
  }
  skip_if_no_python()
  img <- tiny_image()
  expect_error(sd_reproduce(img$path, colour = "red"), class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, 3), class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, steps = 1, steps = 3), "`steps` is given more than once",
               class = "rdiffusers_error_input")
})

test_that("img2img images need their input image, checked by pixel hash", {
  skip_if_no_python()
  dir <- withr::local_tempdir()
  base <- tiny_image(dir = dir)
  other <- tiny_image(seed = 12, dir = dir)
  img <- sd_img2img(base, "a lighthouse at night", model = "tiny", steps = 2,
                    strength = 0.5, seed = 3, output_dir = dir)
  expect_error(sd_reproduce(img$path), class = "rdiffusers_error_reproduce")
  expect_error(sd_reproduce(img$path, image = other), class = "rdiffusers_error_reproduce")
  out <- sd_reproduce(img$path, image = base$path, output_dir = dir)
  expect_true(out$identical)
})

test_that("inpainted images reproduce from a coloured mask file", {
  skip_if_no_python()
  dir <- withr::local_tempdir()
  base <- tiny_image(dir = dir)
  # Red strokes on black, as drawing tools save masks: read as grey.
  mask <- array(0, c(64, 64, 3))
  mask[17:48, 17:48, 1] <- 1
  mask[17:48, 17:48, 2] <- 0.2
  mask_path <- file.path(dir, "mask.png")
  png::writePNG(mask, mask_path)
  img <- sd_inpaint(base, mask_path, "a red door", model = "tiny", steps = 2, seed = 5,
                    output_dir = dir)
  expect_error(sd_reproduce(img$path, image = base$path, mask = base$path),
               class = "rdiffusers_error_reproduce")
  out <- sd_reproduce(img$path, image = base$path, mask = mask_path, output_dir = dir)
  expect_true(out$identical)
})

test_that("LoRAs are checked by hash, applied for the call, and the model's own restored", {
  skip_if_no_python()
  dir <- withr::local_tempdir()
  on.exit(sd_unload_lora(model = "tiny"), add = TRUE)
  lora <- file.path(dir, "style.safetensors")
  file.copy(test_lora("repro-style", seed = 5), lora)
  sd_load_lora(lora, scale = 0.7, adapter_name = "style", model = "tiny")
  img <- tiny_image(dir = dir)
  expect_identical(img$meta$loras[[1]]$name, "style")
  sd_unload_lora(model = "tiny")

  out <- sd_reproduce(img$path, output_dir = dir)
  expect_true(out$identical)
  expect_identical(nrow(sd_loras("tiny")), 0L)

  # With another LoRA on the model, it is swapped out for the call and back.
  other <- test_lora("repro-other", seed = 6)
  sd_load_lora(other, scale = 0.3, adapter_name = "other", model = "tiny")
  out <- sd_reproduce(img$path, output_dir = dir)
  expect_true(out$identical)
  expect_identical(sd_loras("tiny")$name, "other")
  sd_unload_lora(model = "tiny")

  # The same LoRA at another scale runs at the recorded one, and is put back.
  sd_load_lora(lora, scale = 0.2, adapter_name = "style", model = "tiny")
  out <- sd_reproduce(img$path, output_dir = dir)
  expect_true(out$identical)
  expect_identical(sd_loras("tiny")$scale, 0.2)
  sd_unload_lora(model = "tiny")

  # A changed file is refused rather than silently producing something else.
  file.copy(test_lora("repro-changed", seed = 7), lora, overwrite = TRUE)
  expect_error(sd_reproduce(img$path, output_dir = dir), class = "rdiffusers_error_reproduce")
  unlink(lora)
  expect_error(sd_reproduce(img$path, output_dir = dir), class = "rdiffusers_error_reproduce")
  expect_snapshot(sd_reproduce(img$path, output_dir = dir), error = TRUE,
                  transform = function(x) gsub("'[^']*'", "'<path>'", x))

  # A moved file is found where `loras` says, still checked by its hash.
  moved <- file.path(withr::local_tempdir(), "moved.safetensors")
  file.copy(test_lora("repro-style", seed = 5), moved)
  out <- sd_reproduce(img$path, loras = c(style = moved), output_dir = dir)
  expect_true(out$identical)
  expect_identical(out$image$meta$loras[[1]]$path, normalizePath(moved))
  expect_identical(nrow(sd_loras("tiny")), 0L)
  file.copy(test_lora("repro-changed", seed = 7), moved, overwrite = TRUE)
  expect_error(sd_reproduce(img$path, loras = c(style = moved), output_dir = dir),
               class = "rdiffusers_error_reproduce")
  expect_error(sd_reproduce(img$path, loras = c(other = moved), output_dir = dir),
               "records no LoRA named", class = "rdiffusers_error_input")
  for (bad in list(moved, c(style = NA_character_), list(style = moved), c(style = moved, style = moved),
                   stats::setNames(moved, NA))) {
    expect_error(sd_reproduce(img$path, loras = bad, output_dir = dir),
                 class = "rdiffusers_error_input")
  }
})

test_that("LoRAs already as recorded stay loaded; ones that could not be put back stop it first", {
  skip_if_no_python()
  dir <- withr::local_tempdir()
  on.exit(sd_unload_lora(model = "tiny"), add = TRUE)
  sd_load_lora(test_lora("keep-a", seed = 11), scale = 1, adapter_name = "a", model = "tiny")
  sd_load_lora(test_lora("keep-b", seed = 12), scale = 0.5, adapter_name = "b", model = "tiny")
  img <- tiny_image(dir = dir)
  unloads <- 0L
  real_unload <- sd_unload_lora
  local_ns_mock(sd_unload_lora = function(...) {
    unloads <<- unloads + 1L
    real_unload(...)
  })
  out <- sd_reproduce(img$path, output_dir = dir)
  expect_true(out$identical)
  expect_identical(unloads, 0L)
  sd_unload_lora(model = "tiny")

  # A LoRA loaded now whose file has gone could not come back afterwards.
  gone <- file.path(dir, "gone.safetensors")
  file.copy(test_lora("keep-c", seed = 13), gone)
  sd_load_lora(gone, adapter_name = "gone", model = "tiny")
  unlink(gone)
  n_files <- length(list.files(dir))
  expect_error(sd_reproduce(img$path, output_dir = dir), "could not be put back",
               class = "rdiffusers_error_reproduce")
  expect_identical(sd_loras("tiny")$name, "gone")
  expect_length(list.files(dir), n_files)
})

test_that("a pickle LoRA named in an image's metadata needs trusted = TRUE", {
  skip_if_no_python()
  dir <- withr::local_tempdir()
  on.exit(sd_unload_lora(model = "tiny"), add = TRUE)
  pickle <- test_lora("repro-pickle", seed = 8, ext = "bin")
  sd_load_lora(pickle, adapter_name = "pickled", model = "tiny", trusted = TRUE)
  img <- tiny_image(dir = dir)
  sd_unload_lora(model = "tiny")
  expect_error(sd_reproduce(img$path, output_dir = dir), "pickle", class = "rdiffusers_error_lora")
  expect_identical(nrow(sd_loras("tiny")), 0L)
  expect_true(sd_reproduce(img$path, output_dir = dir, trusted = TRUE)$identical)
})

test_that("overrides are checked like sd_generate()'s arguments", {
  skip_if_no_python()
  img <- tiny_image()
  expect_error(sd_reproduce(img$path, clip_skip = NA), class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, seed = c(1, 2)), class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, prompt = c("a", "b")), class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, strength = 2), class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, prompt = NULL), "single value",
               class = "rdiffusers_error_input")
  # NULL means what it means for sd_generate(): no negative prompt, a random seed.
  with_neg <- tiny_image(negative_prompt = "fog")
  out <- sd_reproduce(with_neg$path, negative_prompt = NULL, seed = NULL,
                      output_dir = withr::local_tempdir())
  expect_identical(png_read_meta(out$image$path)$negative_prompt,
                   img$meta$negative_prompt)
  expect_false(identical(out$image$meta$seed, with_neg$meta$seed))
  # What differs says the seed drawn, not NA.
  seed_row <- out$differences[out$differences$what == "seed", ]
  expect_identical(seed_row$now, format_value(out$image$meta$seed))
  # A NULL that gives the recorded value (the model's default steps) is no difference.
  out <- sd_reproduce(img$path, steps = NULL, output_dir = withr::local_tempdir())
  expect_true(out$identical)
  expect_false("steps" %in% out$differences$what)
  # device = "auto" is a valid override, not a device to look for.
  out <- sd_reproduce(img$path, device = "auto", output_dir = withr::local_tempdir())
  expect_true(out$identical)
})

test_that("single-file images reproduce with their recorded config; pickle ones when trusted", {
  skip_if_no_python()
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  out <- withr::local_tempdir()
  config <- sd_load_model("tiny")$model_path
  st <- py_call("tiny_single_file", sd_cache_dir())
  # Offline, the file loads only with the config it was made with.
  img <- sd_generate("a fox", model = st, config = config, width = 64, height = 64,
                     steps = 2, seed = 5, output_dir = out, progress = FALSE)
  expect_identical(img$meta$model_config, normalizePath(config))
  expect_null(img$meta$model_variant)
  sd_free()
  expect_true(sd_reproduce(img$path, output_dir = out, progress = FALSE)$identical)
  # The config folder is part of the model: an edit to it is caught (the
  # pixels differed while the stack was said to be the same).
  conf <- file.path(withr::local_tempdir(), "conf")
  dir.create(conf)
  file.copy(list.files(config, full.names = TRUE), conf, recursive = TRUE)
  edited <- sd_generate("a fox", model = st, config = conf, width = 64, height = 64,
                        steps = 2, seed = 5, output_dir = out, progress = FALSE)
  expect_true(rlang::is_string(edited$meta$model_config_revision))
  vae <- file.path(conf, "vae", "config.json")
  writeLines(sub('"scaling_factor": *[0-9.e-]+', '"scaling_factor": 0.5', readLines(vae)), vae)
  sd_free()
  expect_error(sd_reproduce(edited$path, output_dir = out), "configuration folder",
               class = "rdiffusers_error_reproduce")

  # Checkpoint and config folder moved together (another machine): `model`
  # and `config` say where they are now, and both are checked by content.
  place <- file.path(withr::local_tempdir(), "place1")
  dir.create(file.path(place, "conf"), recursive = TRUE)
  file.copy(st, file.path(place, "m.safetensors"))
  file.copy(list.files(config, full.names = TRUE), file.path(place, "conf"), recursive = TRUE)
  made <- sd_generate("a fox", model = file.path(place, "m.safetensors"),
                      config = file.path(place, "conf"), width = 64, height = 64, steps = 2,
                      seed = 5, output_dir = out, progress = FALSE)
  sd_free()
  moved <- file.path(dirname(place), "place2")
  file.rename(place, moved)
  expect_error(sd_reproduce(made$path, model = file.path(moved, "m.safetensors"), output_dir = out),
               "give its new path as `config`", class = "rdiffusers_error_reproduce")
  again <- sd_reproduce(made$path, model = file.path(moved, "m.safetensors"),
                        config = file.path(moved, "conf"), output_dir = out, progress = FALSE)
  expect_true(again$identical)
  expect_setequal(again$differences$what, c("model", "config"))
  expect_identical(again$differences$original[again$differences$what == "config"],
                   made$meta$model_config)
  sd_free()

  ckpt <- file.path(withr::local_tempdir(), "tiny.ckpt")
  reticulate::import("torch")$save(reticulate::import("safetensors.torch")$load_file(st), ckpt)
  img <- sd_generate("a fox", model = ckpt, config = config, trusted = TRUE, width = 64,
                     height = 64, steps = 2, seed = 5, output_dir = out, progress = FALSE)
  sd_free()
  # As in a new session: the trust sd_generate() gave this file is forgotten.
  reticulate::import("rdiffusers_py.pipeline")[["_TRUSTED"]]$clear()
  expect_error(sd_reproduce(img$path, output_dir = out), "trusted = TRUE",
               class = "rdiffusers_error_model")
  expect_error(sd_reproduce(img$path, trusted = NA), class = "rdiffusers_error_input")
  expect_true(sd_reproduce(img$path, output_dir = out, progress = FALSE,
                           trusted = TRUE)$identical)
  sd_free()
})

test_that("a local model whose configuration changed is not taken for the one used", {
  skip_if_no_python()
  dir <- local_model_copy()
  img <- sd_generate("a fox", model = dir, width = 64, height = 64, steps = 2, seed = 5,
                     output_dir = withr::local_tempdir(), progress = FALSE)
  cfg <- file.path(dir, "scheduler", "scheduler_config.json")
  text <- readLines(cfg)
  edited <- sub('"beta_end": *[0-9.e-]+', '"beta_end": 0.03', text)
  expect_false(identical(edited, text))
  writeLines(edited, cfg)
  expect_error(sd_reproduce(img$path), "weights or configuration",
               class = "rdiffusers_error_reproduce")
  sd_free(dir)
  # A model that is gone is said to be gone (it was Python's "Unknown model").
  moved <- file.path(dirname(dir), "moved")
  file.rename(dir, moved)
  expect_error(sd_reproduce(img$path), "not there any more",
               class = "rdiffusers_error_reproduce")
})

test_that("a local model moved elsewhere, files unchanged, is the same model", {
  skip_if_no_python()
  dir <- local_model_copy()
  img <- sd_generate("a fox", model = dir, width = 64, height = 64, steps = 3, seed = 5,
                     output_dir = withr::local_tempdir(), progress = FALSE)
  sd_free(dir)
  moved <- file.path(dirname(dir), "moved")
  file.rename(dir, moved)
  # Its recorded scheduler configuration is used, as for the model itself.
  local_ns_mock(recorded_sampler = function(...) stop("taken for another model"))
  out <- sd_reproduce(img$path, model = moved, output_dir = withr::local_tempdir())
  expect_true(out$identical)
  expect_identical(out$differences$what, "model")
  expect_identical(out$image$meta$model_revision, img$meta$model_revision)
  sd_free(moved)
})

test_that("settings the image's task does not use are refused, not recorded", {
  skip_if_no_python()
  img <- tiny_image()
  expect_error(sd_reproduce(img$path, strength = 0.5), "not used",
               class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, image = img), "not used",
               class = "rdiffusers_error_input")
  expect_error(sd_reproduce(img$path, mask = img), "not used",
               class = "rdiffusers_error_input")
  # img2img takes an image but no mask.
  i2i <- sd_img2img(img, "a lighthouse", strength = 0.5, steps = 2, seed = 1, model = "tiny",
                    output_dir = withr::local_tempdir(), progress = FALSE)
  expect_error(sd_reproduce(i2i, image = img, mask = img), "`mask` is not used",
               class = "rdiffusers_error_input")
})

test_that("the recorded optimize mode is used again, whatever the option says now", {
  skip_if_no_python()
  img <- tiny_image(optimize = "none")
  withr::local_options(rdiffusers.optimize = "bf16")
  out <- sd_reproduce(img$path, output_dir = withr::local_tempdir())
  expect_identical(out$image$meta$optimize, "none")
  expect_true(out$identical)
  # The option does act when the mode is not recorded (a new image).
  expect_identical(tiny_image()$meta$optimize, "bf16")
})
