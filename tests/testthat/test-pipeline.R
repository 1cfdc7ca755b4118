test_that("default model and cache dir follow options", {
  withr::local_options(rdiffusers.model = NULL, rdiffusers.cache_dir = NULL)
  expect_equal(sd_default_model(), "tiny")
  expect_equal(sd_cache_dir(),
               normalizePath(tools::R_user_dir("rdiffusers", "cache"), "/", mustWork = FALSE))
  withr::local_options(rdiffusers.model = "sd15", rdiffusers.cache_dir = "/x/y")
  expect_equal(sd_default_model(), "sd15")
  expect_equal(sd_cache_dir(), normalizePath("/x/y", "/", mustWork = FALSE))
  # Absolute before Python sees it: it would make a folder named "~", or
  # one relative to whatever the working directory is at the time.
  withr::local_options(rdiffusers.cache_dir = "~/rdc")
  expect_equal(sd_cache_dir(), normalizePath(path.expand("~/rdc"), "/", mustWork = FALSE))
  withr::local_dir(withr::local_tempdir())
  withr::local_options(rdiffusers.cache_dir = "rel/cache")
  expect_equal(sd_cache_dir(), file.path(normalizePath(getwd(), "/"), "rel/cache"))
  # A bad option is an R error, not a Python one when a model is loaded.
  withr::local_options(rdiffusers.cache_dir = 3)
  expect_error(sd_cache_dir(), "rdiffusers.cache_dir", class = "rdiffusers_error_input")
  withr::local_options(rdiffusers.cache_dir = withr::local_tempfile(lines = "x"))
  expect_error(sd_cache_dir(), "a file, not a folder", class = "rdiffusers_error_file")
})

test_that("the optimize option is checked like the argument", {
  withr::local_options(rdiffusers.optimize = NA)
  # NA would reach Python as True with reticulate 1.28.
  expect_error(sd_generate("a cat", output_dir = withr::local_tempdir()), "`optimize`",
               class = "rdiffusers_error_input")
  expect_error(sd_load_model("tiny"), "`optimize`", class = "rdiffusers_error_input")
  # A misspelt mode fails in R, whether given as the option or the argument.
  withr::local_options(rdiffusers.optimize = "turbo")
  expect_error(sd_generate("a cat", output_dir = withr::local_tempdir()), "not \"turbo\"",
               class = "rdiffusers_error_input")
  expect_error(sd_load_model("tiny", optimize = "bf-16"), "bf16-compile",
               class = "rdiffusers_error_input")
})

test_that("R's optimize modes are the Python helper's", {
  skip_if_no_python()
  expect_setequal(optimize_modes, c("auto", unlist(py_helper()$optimize$MODES)))
})

test_that("load options are checked in R", {
  expect_error(sd_load_model("tiny", device = "gpu"), class = "rdiffusers_error_input")
  expect_error(sd_load_model("tiny", dtype = "float64"), class = "rdiffusers_error_input")
  expect_error(sd_load_model("tiny", revision = NA_character_), class = "rdiffusers_error_input")
  expect_error(sd_load_model(c("a", "b")), class = "rdiffusers_error_input")
  expect_error(sd_free(3), class = "rdiffusers_error_input")
  # What the docs offer passes.
  for (device in c("auto", "cpu", "mps", "cuda", "cuda:1")) {
    expect_identical(check_load_args(list(device = device))$device, device)
  }
  expect_identical(check_load_args(list(dtype = "bfloat16"))$dtype, "bfloat16")
  expect_error(check_load_args(list(device = "cuda:x")), class = "rdiffusers_error_input")
})

test_that("a local model folder given by its bare name is a path, not an unknown preset", {
  dir <- withr::local_tempdir()
  dir.create(file.path(dir, "mymodel"))
  local_ns_mock(presets_list = function(...) list(tiny = list()))
  withr::with_dir(dir, expect_identical(check_model("mymodel"), "mymodel"))
  expect_error(check_model("mymodel"), "Unknown model", class = "rdiffusers_error_model")
})

test_that("presets and schedulers come from the helper", {
  skip_if_no_python()
  p <- sd_presets()
  expect_s3_class(p, "data.frame")
  expect_true(all(c("tiny", "tiny-sdxl", "tiny-sd3") %in% p$name))
  expect_type(p$steps, "integer")
  expect_type(p$guidance_scale, "double")
  expect_type(p$strength, "double")
  expect_false(anyNA(p$strength[p$name == "tiny"]))
  s <- sd_schedulers()
  expect_type(s, "character")
  expect_true(all(c("Euler a", "EulerAncestralDiscreteScheduler") %in% s))
})

test_that("a loaded pipeline is cached, reused by sd_generate(), and freed", {
  skip_if_no_python()
  sd_free()
  expect_equal(nrow(sd_pipelines()), 0)
  pipe <- sd_load_model("tiny")
  expect_s3_class(pipe, "sd_pipeline")
  expect_true(pipe$loaded)
  expect_equal(pipe$family, "sd15")
  expect_output(print(pipe), "sd_pipeline")
  listed <- sd_pipelines()
  expect_equal(listed$model, "tiny")
  expect_equal(listed$optimize, pipe$optimize)
  expect_equal(names(listed)[c(1, ncol(listed))], c("model", "key"))

  # sd_generate() with the same model reuses it: nothing new in the cache,
  # and loading again reports it was not loaded by that call.
  img <- sd_generate("a cat", width = 64, height = 64, steps = 2, seed = 1,
                     output_dir = withr::local_tempdir(), progress = FALSE)
  expect_equal(nrow(sd_pipelines()), 1)
  expect_false(sd_load_model("tiny")$loaded)

  expect_equal(sd_free("tiny"), 1L)
  expect_equal(nrow(sd_pipelines()), 0)
  expect_true(sd_load_model("tiny")$loaded)
  expect_equal(sd_free(), 1L)
})

test_that("sd_free() finds a model directory by any path to it", {
  skip_if_no_python()
  on.exit(sd_free(), add = TRUE)
  sd_free()
  dir <- withr::local_tempdir()
  src <- sd_load_model("tiny")$model_path
  file.copy(src, dir, recursive = TRUE)
  model <- file.path(dir, basename(src))
  withr::with_dir(dir, sd_load_model(file.path(".", basename(src))))
  expect_false(sd_load_model(model)$loaded)            # the same pipeline
  expect_equal(sd_free(file.path(dir, ".", basename(src))), 1L)
  expect_equal(sd_pipelines()$model, "tiny")           # others stay
})

test_that("an unknown model is a model error and the session stays usable", {
  skip_if_no_python()
  expect_error(sd_load_model("no-such-preset"), class = "rdiffusers_error_model")
  expect_error(sd_load_model(file.path(tempdir(), "no", "such", "dir")),
               class = "rdiffusers_error_model")
  expect_s3_class(sd_load_model("tiny"), "sd_pipeline")
})

test_that("sd_schedulers(details = TRUE) documents each name's class and options", {
  skip_if_no_python()
  tab <- sd_schedulers(details = TRUE)
  expect_identical(tab$name, sd_schedulers())
  row <- tab[tab$name == "DPM++ 2M Karras", ]
  expect_identical(row$class, "DPMSolverMultistepScheduler")
  expect_match(row$options, 'algorithm_type = "dpmsolver++"', fixed = TRUE)
  expect_match(row$options, "use_karras_sigmas = TRUE", fixed = TRUE)
  expect_identical(row$schedule_type, "Karras")
  expect_identical(tab$class[tab$name == "Euler a"], "EulerAncestralDiscreteScheduler")
  expect_error(sd_schedulers(details = NA), class = "rdiffusers_error_input")
})

test_that("a single-file checkpoint loads offline and draws the same pixels", {
  skip_if_no_python()
  path <- rdiffusers:::py_call("tiny_single_file", sd_cache_dir())
  expect_true(file.exists(path))
  config <- rdiffusers:::py_call("tiny_model", "tiny", sd_cache_dir())
  args <- list("a fox", width = 64, height = 64, steps = 2, guidance_scale = 7.5,
               seed = 3, output_dir = withr::local_tempdir())
  from_file <- do.call(sd_generate, c(args, model = path, config = config))
  from_dir <- do.call(sd_generate, c(args, model = "tiny"))
  expect_identical(from_file$meta$model_source, "file")
  expect_identical(from_dir$meta$model_source, "tiny")
  expect_identical(from_file$meta$pixel_sha256, from_dir$meta$pixel_sha256)

  # A file has no preset: unset settings take the family's usual values at
  # the pipeline's native size (64 x 64 for the tiny model).
  plain <- sd_generate("a fox", model = path, config = config, seed = 3,
                       output_dir = withr::local_tempdir())
  expect_identical(plain$meta[c("width", "height", "steps", "guidance_scale")],
                   list(width = 64L, height = 64L, steps = 30L, guidance_scale = 7.5))
  sd_free()
})

test_that("a pickle checkpoint loads only with trusted = TRUE", {
  skip_if_no_python()
  withr::local_envvar(HF_HUB_OFFLINE = "1")
  st <- py_call("tiny_single_file", sd_cache_dir())
  ckpt <- file.path(withr::local_tempdir(), "tiny.ckpt")
  torch <- reticulate::import("torch")
  torch$save(reticulate::import("safetensors.torch")$load_file(st), ckpt)
  config <- sd_load_model("tiny")$model_path
  expect_error(sd_load_model(ckpt, config = config), "trusted = TRUE",
               class = "rdiffusers_error_model")
  expect_error(sd_load_model(ckpt, config = config, trusted = NA),
               class = "rdiffusers_error_input")
  p <- sd_load_model(ckpt, config = config, trusted = TRUE)
  on.exit(sd_free(p), add = TRUE)
  expect_identical(p$source, "file")
  img <- sd_generate("a cat", model = ckpt, config = config, trusted = TRUE, width = 64,
                     height = 64, steps = 2, seed = 1, output_dir = withr::local_tempdir(),
                     progress = FALSE)
  expect_identical(img$meta$model_source, "file")
})
