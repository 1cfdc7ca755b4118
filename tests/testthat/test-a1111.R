test_that("A1111's parser reads back what meta_to_a1111() writes", {
  meta <- example_meta()
  text <- meta_to_a1111(meta)
  ref <- a1111_reference_parse(text)
  expect_identical(ref[["Prompt"]], paste(meta$prompt, "<lora:watercolour:0.8>"))
  expect_identical(ref[["Negative prompt"]], meta$negative_prompt)
  expect_identical(ref[["Steps"]], "2")
  expect_identical(ref[["Sampler"]], "DDIM")
  expect_identical(ref[["CFG scale"]], "7.5")
  expect_identical(ref[["Seed"]], "4294967297")
  expect_identical(ref[["Size-1"]], "64")
  expect_identical(ref[["Size-2"]], "64")
  expect_identical(ref[["Model"]], "tiny")
  expect_identical(ref[["Clip skip"]], "2")
  # The hash A1111 knows the LoRA by, not the sha256 of the file.
  expect_identical(ref[["Lora hashes"]], paste0("watercolour: ", strrep("cd", 6)))
  expect_match(ref[["Version"]], "^rdiffusers ")
})

test_that("a sampler or schedule A1111 does not have is given as the diffusers class", {
  meta <- example_meta()
  # What ran has no A1111 schedule type (a model's own "leading" DPM++ 2M):
  # A1111 would run "DPM++ 2M" as Karras.
  meta$scheduler <- "DPMSolverMultistepScheduler"
  meta$sampler <- "DPM++ 2M"
  meta$schedule_type <- NULL
  ref <- a1111_reference_parse(meta_to_a1111(meta))
  expect_null(ref[["Sampler"]])
  expect_null(ref[["Schedule type"]])
  expect_identical(ref[["Diffusers scheduler"]], "DPMSolverMultistepScheduler")
  # No A1111 sampler at all (DEIS).
  meta$scheduler <- "DEISMultistepScheduler"
  meta$sampler <- NULL
  ref <- a1111_reference_parse(meta_to_a1111(meta))
  expect_null(ref[["Sampler"]])
  expect_identical(ref[["Diffusers scheduler"]], "DEISMultistepScheduler")
  # Settings written by hand (no recorded scheduler config) keep their sampler.
  ref <- a1111_reference_parse(meta_to_a1111(list(steps = 20L, sampler = "Euler a", seed = 1)))
  expect_identical(ref[["Sampler"]], "Euler a")
})

test_that("another tool's A1111 fields survive png_write_meta(meta = png_read_meta())", {
  path <- fixture("other-tools", "AUTOMATIC1111", "automatic1111_cropped.png")
  meta <- png_read_meta(path)
  meta$a1111 <- c(meta$a1111, list(`Lora hashes` = "ink: 0123456789ab", `Hires upscale` = "2",
                                   `bad, name` = "x", Steps = "99"))
  ref <- a1111_reference_parse(meta_to_a1111(meta))
  expect_identical(ref[["Model hash"]], "c0d1994c73")
  expect_identical(ref[["Lora hashes"]], "ink: 0123456789ab")
  expect_identical(ref[["Hires upscale"]], "2")
  # Not a name A1111 would read back, or one the settings already give.
  expect_null(ref[["bad, name"]])
  expect_identical(ref[["Steps"]], "15")
})

test_that("a single-file checkpoint is named as A1111 names it, with its hash", {
  meta <- example_meta()
  meta$model <- meta$model_id <- "/models/dreamshaper_8.safetensors"
  meta$model_source <- "file"
  meta$model_revision <- paste0("sha256:", "879db523c3", strrep("0", 54))
  ref <- a1111_reference_parse(meta_to_a1111(meta))
  expect_identical(ref[["Model"]], "dreamshaper_8")
  expect_identical(ref[["Model hash"]], "879db523c3")
  # A diffusers folder keeps its path; it has no A1111 hash.
  meta$model_source <- "dir"
  meta$model <- meta$model_id <- "/models/dreamshaper"
  ref <- a1111_reference_parse(meta_to_a1111(meta))
  expect_identical(ref[["Model"]], "/models/dreamshaper")
  expect_null(ref[["Model hash"]])
})

test_that("A1111 texts whose prompt starts with a brace are read; spaces stripped as A1111 does", {
  text <- paste0("{{masterpiece}}, {red|blue} hair\u3000\n",
                 "Negative prompt: lowres\u3000\n",
                 "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 9, ",
                 "Size: 512x512, Version: v1.10.1")
  ch <- tiny_png_chunks()
  path <- write_bytes(png_bytes(ch$ihdr, rdiffusers:::png_text_chunk("parameters", text),
                                ch$idat, ch$iend))
  meta <- png_read_meta(path)
  expect_identical(attr(meta, "tool"), "a1111")
  expect_identical(meta$prompt, "{{masterpiece}}, {red|blue} hair")
  expect_identical(meta$negative_prompt, "lowres")
  expect_identical(meta$seed, 9)
})

test_that("values with commas, colons and newlines are JSON-quoted and survive A1111's parser", {
  meta <- list(
    prompt = "line one, with: colon\n  line two",
    negative_prompt = "ugly,\nbad",
    steps = 30L, guidance_scale = 0.1 + 0.2, seed = "18446744073709551615",
    width = 512L, height = 768L,
    model = "C:\\models\\sd, v1.5: \"best\"", scheduler = "DPMSolverMultistepScheduler",
    sampler = "DPM++ 2M", schedule_type = "Karras", strength = 0.75
  )
  text <- meta_to_a1111(meta)
  ref <- a1111_reference_parse(text)
  expect_identical(ref[["Model"]], meta$model)
  expect_identical(ref[["Seed"]], meta$seed)
  expect_identical(as.double(ref[["CFG scale"]]), meta$guidance_scale)
  expect_identical(ref[["Denoising strength"]], "0.75")
  expect_identical(ref[["Schedule type"]], "Karras")
  expect_identical(ref[["Sampler"]], "DPM++ 2M")
  # A1111 strips each prompt line; that is the format, not a loss we add.
  expect_identical(ref[["Prompt"]], "line one, with: colon\nline two")
  expect_identical(ref[["Negative prompt"]], "ugly,\nbad")

  # parse_a1111() agrees with the reference and types the values.
  parsed <- parse_a1111(text)
  expect_identical(parsed$model, meta$model)
  expect_identical(parsed$seed, meta$seed)
  expect_identical(parsed$steps, 30L)
  expect_identical(parsed$guidance_scale, meta$guidance_scale)
  expect_identical(parsed$width, 512L)
  expect_identical(parsed$height, 768L)
  expect_identical(parsed$strength, 0.75)
  expect_identical(parsed$prompt, ref[["Prompt"]])
})

test_that("parse_a1111() agrees with the reference parser on real A1111 files", {
  for (file in c("automatic1111_cropped.png", "automatic1111_stealth.png")) {
    path <- fixture("other-tools", "AUTOMATIC1111", file)
    text <- attr(png_read_meta(path), "chunks")[["parameters"]]
    ref <- a1111_reference_parse(text)
    parsed <- parse_a1111(text)
    expect_identical(parsed$prompt, ref[["Prompt"]])
    expect_identical(parsed$negative_prompt, ref[["Negative prompt"]])
    expect_identical(parsed$steps, as.integer(ref[["Steps"]]))
    expect_identical(parsed$seed, as.double(ref[["Seed"]]))
    expect_identical(parsed$guidance_scale, as.double(ref[["CFG scale"]]))
    expect_identical(parsed$width, as.integer(ref[["Size-1"]]))
    expect_identical(parsed$model, ref[["Model"]])
    expect_identical(parsed$clip_skip %||% 0L, as.integer(ref[["Clip skip"]]) - 1L)
  }
})

test_that("text without a settings line is all prompt", {
  parsed <- parse_a1111("just a prompt, nothing else")
  expect_identical(parsed$prompt, "just a prompt, nothing else")
  expect_null(parsed$steps)
  # Two pairs are not a settings line, for A1111 and for us.
  expect_identical(a1111_reference_parse("a: 1, b: 2")[["Prompt"]], "a: 1, b: 2")
  expect_identical(parse_a1111("a: 1, b: 2")$prompt, "a: 1, b: 2")
})

test_that("a LoRA tag already in the prompt is not added again; colons are quoted", {
  meta <- example_meta()
  meta$prompt <- "a fox <lora:watercolour:0.8>"
  ref <- a1111_reference_parse(meta_to_a1111(meta))
  expect_identical(ref[["Prompt"]], "a fox <lora:watercolour:0.8>")
  # As A1111's quote(): a colon alone is enough.
  expect_identical(a1111_value("sd:v1"), "\"sd:v1\"")
  expect_identical(a1111_value("sd v1"), "sd v1")
})

test_that("LoRA tags in the prompt are listed", {
  parsed <- parse_a1111("a fox <lora:ink:0.6> <lora:paper:1>\nSteps: 4, Seed: 1, CFG scale: 7")
  expect_identical(parsed$loras, list(list(name = "ink", scale = 0.6), list(name = "paper", scale = 1)))
  # A1111's extra-network arguments: text encoder, then UNet multiplier.
  parsed <- parse_a1111(paste("x <lora:a:0.8:0.2> <lora:b:unet=0.5> <lora:c> <lora:d:te=0.3>",
                              "<lora:e:0.7:0.7>\nSteps: 4, Seed: 1, CFG scale: 7"))
  expect_identical(parsed$loras, list(
    list(name = "a", scale = 0.8, unet_scale = 0.2), list(name = "b", scale = 1, unet_scale = 0.5),
    list(name = "c", scale = 1), list(name = "d", scale = 0.3), list(name = "e", scale = 0.7)
  ))
})

test_that("meta without generation settings gives no parameters chunk", {
  expect_identical(meta_to_a1111(list(author = "me")), "")
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = list(author = "me"))
  expect_false("parameters" %in% names(png_read_meta(out, format = "raw")))
})

test_that("a settings line A1111 would take for prompt is not written", {
  expect_identical(meta_to_a1111(list(prompt = "a cat", seed = 1)), "")
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = list(prompt = "a cat", seed = 1))
  expect_false("parameters" %in% names(png_read_meta(out, format = "raw")))
  expect_identical(png_read_meta(out)$seed, 1)
  ref <- a1111_reference_parse(meta_to_a1111(list(prompt = "a cat", seed = 1, steps = 2L)))
  expect_identical(ref[c("Prompt", "Seed", "Steps")], list(Prompt = "a cat", Seed = "1", Steps = "2"))
})

test_that("large whole-number seeds are written in plain digits, never as 1e+15", {
  for (seed in c(1e17, 2^63, 2^64 - 2048)) {
    ref <- a1111_reference_parse(meta_to_a1111(list(prompt = "a", seed = seed, steps = 2L)))
    expect_identical(ref[["Seed"]], sprintf("%.0f", seed))
  }
  meta <- list(prompt = "a fox", seed = 3456789012345670, steps = 2L,
               guidance_scale = 7.5, width = 64L, height = 64L)
  ref <- a1111_reference_parse(meta_to_a1111(meta))
  expect_identical(ref[["Seed"]], "3456789012345670")
  path <- file.path(withr::local_tempdir(), "seed.png")
  png_write_meta(local_png(), path, meta = meta)
  expect_identical(png_read_meta(path)$seed, 3456789012345670)
  plain <- png_read_meta(path, format = "raw")
  expect_identical(plain[["seed"]], "3456789012345670")
  expect_identical(parse_a1111(plain[["parameters"]])$seed, 3456789012345670)
})
