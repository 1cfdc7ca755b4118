test_that("rdiffusers metadata round-trips exactly, types included", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  meta <- example_meta()
  png_write_meta(src, out, meta = meta)
  expect_identical(as.list(png_read_meta(out)), meta)
  expect_identical(attr(png_read_meta(out), "tool"), "rdiffusers")
  # An sd_image stands for its file.
  img <- new_sd_image(out, meta)
  expect_identical(png_read_meta(img), png_read_meta(out))
  expect_identical(png_read_meta(new_sd_images(list(img))), png_read_meta(out))
  expect_error(png_read_meta(new_sd_images(list(img, img))), class = "rdiffusers_error_input")
  again <- withr::local_tempfile(fileext = ".png")
  png_write_meta(new_sd_images(list(img)), again)
  expect_identical(as.list(png_read_meta(again)), meta)
  # What png_read_meta() returns is written back as it is.
  copy <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, copy, meta = png_read_meta(out))
  expect_identical(as.list(png_read_meta(copy)), meta)
})

test_that("tricky values survive: numbers as text, NA of each type, 17-digit doubles, 64-bit seeds", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  meta <- list(
    prompt = "3 cats on a sofa",
    texts = c("007", "1e5", "TRUE", "NA", "", "a \"quoted\"\n\ttab\\"),
    int = 7L, dbl = 7, third = 1 / 3, sum = 0.1 + 0.2, tiny = 5e-324,
    huge = .Machine$double.xmax, neg = -2.5e-17,
    specials = c(NaN, Inf, -Inf, NA),
    nas = list(NA, NA_integer_, NA_real_, NA_character_),
    lgl = c(TRUE, FALSE, NA),
    chr_na = c("cat", NA, "dog"),
    na_name = stats::setNames(list(1L, "b"), c("a", NA)),
    null = NULL,
    empty = list(), empty_named = setNames(list(), character()),
    chr0 = character(), int0 = integer(),
    named_vec = c(a = 1L, b = 2L),
    nested = list(a = list(b = list(c = "deep", d = 1:3)), e = list(1, "x", NULL)),
    seed = 2^53,
    seed_big = "18446744073709551615",
    unicode = c("Georgia O\u2019Keeffe", "\u6c34\u58a8\u753b", "\U0001f431 cat")
  )
  png_write_meta(src, out, meta = meta)
  expect_identical(as.list(png_read_meta(out)), meta)
})

test_that("the typed chunk is ASCII tEXt; text outside Latin-1 goes to iTXt", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = list(prompt = "\u6c34\u58a8\u753b", steps = 2L))
  raw <- png_read_meta(out, format = "raw")
  expect_true(all(utf8ToInt(raw$rdiffusers) < 128))
  expect_identical(raw$Description, "\u6c34\u58a8\u753b")
  expect_true("iTXt" %in% chunk_types(out))
  expect_identical(png_read_meta(out)$prompt, "\u6c34\u58a8\u753b")
})

test_that("the pixels are copied byte for byte", {
  src <- local_png(16, 12)
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = example_meta())
  expect_identical(chunk_bytes(out, c("IHDR", "IDAT", "IEND")),
                   chunk_bytes(src, c("IHDR", "IDAT", "IEND")))
  expect_identical(png::readPNG(out), png::readPNG(src))
  # Rewriting replaces the text chunks instead of piling them up.
  out2 <- withr::local_tempfile(fileext = ".png")
  png_write_meta(out, out2, meta = list(prompt = "new", steps = 1L))
  expect_identical(as.list(png_read_meta(out2)), list(prompt = "new", steps = 1L))
  fresh <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, fresh, meta = list(prompt = "new", steps = 1L))
  expect_identical(chunk_types(out2), chunk_types(fresh))
  expect_false(any(grepl("watercolour", png_read_meta(out2, format = "raw"))))
})

test_that("existing files are not replaced unless overwrite = TRUE", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = list(prompt = "first"))
  before <- readBin(out, "raw", file.size(out))
  expect_error(png_write_meta(src, out, meta = list(prompt = "second")),
               class = c("rdiffusers_error_exists"))
  expect_identical(readBin(out, "raw", file.size(out)), before)
  expect_invisible(png_write_meta(src, out, meta = list(prompt = "second"), overwrite = TRUE))
  expect_identical(png_read_meta(out)$prompt, "second")
  # No temporary files left beside it.
  expect_identical(list.files(dirname(out), pattern = "^\\.rdiffusers-write-", all.files = TRUE),
                   character())
})

test_that("overwriting keeps the file's permissions and writes through a symlink", {
  skip_on_os("windows")
  src <- local_png()
  dir <- withr::local_tempdir()
  out <- file.path(dir, "out.png")
  png_write_meta(src, out, meta = list(seed = 1))
  Sys.chmod(out, "600", use_umask = FALSE)
  png_write_meta(src, out, meta = list(seed = 2), overwrite = TRUE)
  expect_identical(format(file.mode(out)), "600")
  link <- file.path(dir, "link.png")
  file.symlink(out, link)
  png_write_meta(src, link, meta = list(seed = 3), overwrite = TRUE)
  expect_identical(Sys.readlink(link), out)
  expect_identical(png_read_meta(out)$seed, 3)
  expect_identical(format(file.mode(out)), "600")
  expect_setequal(list.files(dir, all.files = TRUE, no.. = TRUE), c("out.png", "link.png"))
  # A link whose target is gone still names something: not replaced.
  dangling <- file.path(dir, "dangling.png")
  file.symlink(file.path(dir, "gone.png"), dangling)
  expect_error(png_write_meta(src, dangling, meta = list(seed = 4)),
               class = "rdiffusers_error_exists")
  expect_identical(Sys.readlink(dangling), file.path(dir, "gone.png"))
  # Overwriting it writes its target, as for any link.
  png_write_meta(src, dangling, meta = list(seed = 5), overwrite = TRUE)
  expect_identical(Sys.readlink(dangling), file.path(dir, "gone.png"))
  # A relative link points from its own folder, not the working directory.
  relative <- file.path(dir, "relative.png")
  file.symlink("gone-too.png", relative)
  withr::with_dir(withr::local_tempdir(),
                  png_write_meta(src, relative, meta = list(seed = 6), overwrite = TRUE))
  expect_true(file.exists(file.path(dir, "gone-too.png")))
  expect_identical(png_read_meta(relative)$seed, 6)
  expect_identical(png_read_meta(file.path(dir, "gone.png"))$seed, 5)
})

test_that("a directory as the file to write is said to be one", {
  src <- local_png()
  dir <- withr::local_tempdir()
  for (path in c(dir, file.path(dir, "x.png/"))) {
    for (overwrite in c(FALSE, TRUE)) {
      expect_error(png_write_meta(src, path, meta = list(seed = 1), overwrite = overwrite),
                   "is a directory, not a file name", class = "rdiffusers_error_file")
    }
  }
  expect_identical(list.files(dir, all.files = TRUE, no.. = TRUE), character())
})

test_that("metadata too large to read back, or nested too deep, is refused", {
  src <- local_png()
  out <- file.path(withr::local_tempdir(), "out.png")
  local_ns_mock(png_text_limit = 1000)
  expect_error(png_write_meta(src, out, meta = list(prompt = strrep("a", 1000))),
               "too large", class = "rdiffusers_error_input")
  deep <- list(1)
  for (i in 1:150) deep <- list(deep)
  expect_error(png_write_meta(src, out, meta = list(x = deep)), "100 deep",
               class = "rdiffusers_error_input")
  expect_false(file.exists(out))
  png_write_meta(src, out, meta = list(prompt = strrep("a", 800)))
  expect_identical(nchar(png_read_meta(out)$prompt), 800L)
})

test_that("duplicated names, NA values, aliases, long keywords and zero-padded seeds", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  expect_error(png_write_meta(src, out, meta = list(seed = 1, seed = 2)), "duplicated",
               class = "rdiffusers_error_input")
  expect_false(file.exists(out))
  # An NA setting is not written as the text "NA" for Pillow's readers.
  png_write_meta(src, out, meta = list(prompt = "a cat", seed = NA_real_, steps = 20L))
  chunks <- attr(png_read_meta(out), "chunks")
  expect_identical(chunks[["steps"]], "20")
  expect_false("seed" %in% names(chunks))
  # A plain chunk and its alias: the first in the file wins.
  ch <- tiny_png_chunks()
  path <- write_bytes(png_bytes(ch$ihdr, rdiffusers:::png_text_chunk("steps", "20"),
                                rdiffusers:::png_text_chunk("num_inference_steps", "30"),
                                ch$idat, ch$iend))
  expect_identical(png_read_meta(path)$steps, 20L)
  # A keyword of 80 characters is none (PNG allows 79): the chunk is skipped.
  long <- rdiffusers:::png_chunk("tEXt", c(charToRaw(strrep("k", 80)), as.raw(0), charToRaw("v")))
  path <- write_bytes(png_bytes(ch$ihdr, long, ch$idat, ch$iend))
  expect_warning(meta <- png_read_meta(path), "no valid keyword",
                 class = "rdiffusers_warning_metadata")
  expect_length(meta, 0)
  # Seeds keep every digit, without leading zeros.
  expect_identical(as_seed("0018446744073709551615"), "18446744073709551615")
  expect_identical(as_seed("007"), 7)
})

test_that("a truncated source PNG is refused, and nothing is written", {
  src <- local_png()
  bytes <- readBin(src, "raw", file.size(src))
  cut <- withr::local_tempfile(fileext = ".png")
  writeBin(bytes[seq_len(length(bytes) - 12)], cut)   # without IEND
  out <- withr::local_tempfile(fileext = ".png")
  expect_error(png_write_meta(cut, out, meta = list(seed = 1)), "truncated",
               class = "rdiffusers_error_file")
  expect_false(file.exists(out))
})

test_that("a keyword that occurs twice reads as its last text, as in Pillow", {
  ch <- tiny_png_chunks()
  path <- write_bytes(png_bytes(ch$ihdr, rdiffusers:::png_text_chunk("seed", "1"), ch$idat,
                                rdiffusers:::png_text_chunk("seed", "2"), ch$iend))
  expect_identical(png_read_meta(path)$seed, 2)
  expect_identical(png_read_meta(path, format = "raw"), list(seed = "2"))
})

test_that("an rdiffusers chunk holding a value of the wrong type is ignored with a warning", {
  ch <- tiny_png_chunks()
  doc <- function(node) {
    paste0('{"format":"rdiffusers","version":1,"meta":{"t":"list","v":[', node, '],"n":["a"]}}')
  }
  for (node in c('{"t":"integer","v":["x"]}', '{"t":"integer","v":[99999999999]}',
                 '{"t":"integer","v":[1.5]}', '{"t":"double","v":["1"]}',
                 '{"t":"logical","v":["yes"]}', '{"t":"character","v":[1]}',
                 '{"t":"character","v":"x"}')) {
    path <- write_bytes(png_bytes(ch$ihdr, rdiffusers:::png_text_chunk("rdiffusers", doc(node)),
                                  rdiffusers:::png_text_chunk("seed", "5"), ch$idat, ch$iend))
    expect_warning(meta <- png_read_meta(path), "not valid",
                   class = "rdiffusers_warning_metadata")
    expect_identical(as.list(meta), list(seed = 5))
  }
  # The top level is a named list: a named vector there is not rdiffusers'.
  atomic <- paste0('{"format":"rdiffusers","version":1,',
                   '"meta":{"t":"character","v":["txt2img"],"n":["task"]}}')
  path <- write_bytes(png_bytes(ch$ihdr, rdiffusers:::png_text_chunk("rdiffusers", atomic),
                                rdiffusers:::png_text_chunk("seed", "5"), ch$idat, ch$iend))
  expect_warning(meta <- png_read_meta(path), "not valid", class = "rdiffusers_warning_metadata")
  expect_identical(as.list(meta), list(seed = 5))
  good <- write_bytes(png_bytes(ch$ihdr, rdiffusers:::png_text_chunk(
    "rdiffusers", doc('{"t":"double","v":[1, "NaN", null, "-Inf"]}')), ch$idat, ch$iend))
  expect_identical(as.list(png_read_meta(good)), list(a = c(1, NaN, NA, -Inf)))
})

test_that("a file that appears during the write is not replaced", {
  src <- local_png()
  dir <- withr::local_tempdir()
  out <- file.path(dir, "race.png")
  # Another writer creates `out` after the existence check: the final step
  # must refuse instead of renaming over it.
  tmp <- file.path(dir, "mine.png")
  writeBin(as.raw(1:3), tmp)
  writeBin(as.raw(9), out)
  expect_identical(place_new_file(tmp, out), NA)
  expect_identical(readBin(out, "raw", 10), as.raw(9))
  expect_true(file.exists(tmp))
  # A free name is taken, with the bytes written.
  out2 <- file.path(dir, "free.png")
  expect_true(place_new_file(tmp, out2))
  expect_identical(readBin(out2, "raw", 10), as.raw(1:3))

  # write_atomic() turns that into the classed error and cleans up.
  local_ns_mock(place_new_file = function(tmp, path) NA)
  expect_error(png_write_meta(src, file.path(dir, "late.png"), meta = list(prompt = "x")),
               class = "rdiffusers_error_exists")
  expect_false(file.exists(file.path(dir, "late.png")))
  expect_identical(list.files(dir, pattern = "^\\.rdiffusers-write-", all.files = TRUE),
                   character())
})

test_that("text that is not valid UTF-8 is refused; Latin-1 text is converted", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  raw_latin1 <- "caf\xe9"  # bytes, no declared encoding
  expect_error(png_write_meta(src, out, meta = list(s = raw_latin1)),
               "valid UTF-8", class = "rdiffusers_error_input")
  expect_error(png_write_meta(src, out, meta = list(s = list(t = c("ok", raw_latin1)))),
               "valid UTF-8", class = "rdiffusers_error_input")
  expect_false(file.exists(out))
  latin1 <- raw_latin1
  Encoding(latin1) <- "latin1"
  png_write_meta(src, out, meta = list(s = latin1))
  expect_identical(png_read_meta(out)$s, "caf\u00e9")
})

test_that("invalid metadata names are refused with a classed error and nothing is written", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  expect_error(png_write_meta(src, out, meta = list(` bad` = 1)), class = "rdiffusers_error_input")
  expect_error(png_write_meta(src, out, meta = list(`a  b` = 1)), class = "rdiffusers_error_input")
  expect_error(png_write_meta(src, out, meta = setNames(list(1), strrep("k", 80))),
               class = "rdiffusers_error_input")
  expect_error(png_write_meta(src, out, meta = setNames(list(1), "\u6c34")), class = "rdiffusers_error_input")
  expect_error(png_write_meta(src, out, meta = list(1, 2)), class = "rdiffusers_error_input")
  expect_error(png_write_meta(src, out, meta = list(f = mean)), class = "rdiffusers_error_input")
  expect_false(file.exists(out))
  expect_snapshot(png_write_meta(src, out, meta = list(`trailing ` = 1)), error = TRUE)
  # The metadata given where the output path goes: the error says so.
  expect_snapshot(png_write_meta(src, list(prompt = "x")), error = TRUE)
  expect_false(file.exists(out))
})

test_that("an sd_image is written with its own metadata by default", {
  src <- local_png()
  img <- structure(list(path = src, meta = list(prompt = "from the object", seed = 3)),
                   class = "sd_image")
  out <- withr::local_tempfile(fileext = ".png")
  expect_identical(png_write_meta(img, out), out)
  expect_identical(as.list(png_read_meta(out)), img$meta)
})

test_that("a PNG path without meta keeps its own text chunks unchanged", {
  src <- fixture("other-tools", "AUTOMATIC1111", "automatic1111_cropped.png")
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out)
  expect_identical(png_read_meta(out, format = "raw"), png_read_meta(src, format = "raw"))
  expect_identical(png::readPNG(out), png::readPNG(src))
})

test_that("generated PNGs carry A1111 parameters and plain chunks, never a plain `prompt`", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = example_meta())
  raw <- png_read_meta(out, format = "raw")
  expect_false("prompt" %in% names(raw))
  expect_identical(raw$Description, example_meta()$prompt)
  expect_identical(raw$seed, "4294967297")
  expect_identical(raw$guidance_scale, "7.5")
  expect_match(raw$Software, "^rdiffusers ")
  a1111 <- png_read_meta(out, format = "a1111")
  expect_identical(a1111$seed, 4294967297)
  expect_identical(a1111$steps, 2L)
  # Without the typed chunk, the plain chunks alone still give typed values.
  plain <- png_read_meta(out, format = "text")
  expect_identical(plain$prompt, example_meta()$prompt)
  expect_identical(plain$steps, 2L)
  expect_identical(plain$guidance_scale, 7.5)
})

test_that("hand-written PNGs (Pillow PngInfo, one string per key) come back typed where unambiguous", {
  meta <- png_read_meta(fixture("hand-written", "pillow_pnginfo.png"))
  expect_identical(attr(meta, "tool"), "unknown")
  expect_identical(meta$prompt, "3 cats on a sofa")
  expect_identical(meta$negative_prompt, "blurry, 1e5")
  expect_identical(meta$steps, 20L)
  expect_identical(meta$guidance_scale, 7.5)
  expect_identical(meta$seed, 3293022630)
  expect_identical(meta$width, 512L)
  expect_identical(meta$model, "runwayml/stable-diffusion-v1-5")
  expect_identical(meta$safety, TRUE)
  expect_identical(meta$code, "007")
  expect_identical(meta$exp, "1e5")
  expect_identical(meta$missing, "NA")
  expect_identical(meta$ratio, -0.25)
  expect_identical(meta$title_cn, "\u6c34\u58a8\u753b")

  meta <- png_read_meta(fixture("hand-written", "pillow_compressed.png"))
  expect_identical(meta$prompt, "Georgia O\u2019Keeffe, flowers")
  expect_identical(meta$steps, 30L)
  expect_identical(meta$seed, "18446744073709551615")
  expect_identical(meta$guidance_scale, 8)
})

test_that("PNGs written with Pillow in this session are read, and Pillow reads ours", {
  skip_if_no_python()
  Image <- reticulate::import("PIL.Image")
  PngImagePlugin <- reticulate::import("PIL.PngImagePlugin")
  im <- Image$new("RGB", reticulate::tuple(8L, 8L))
  info <- PngImagePlugin$PngInfo()
  info$add_text("prompt", "42")
  info$add_text("num_inference_steps", "25")
  info$add_text("guidance_scale", "6.5")
  info$add_text("note", "\u6c34\u58a8\u753b", zip = TRUE)
  path <- withr::local_tempfile(fileext = ".png")
  im$save(path, pnginfo = info)
  meta <- png_read_meta(path)
  expect_identical(meta$prompt, "42")
  expect_identical(meta$steps, 25L)
  expect_identical(meta$guidance_scale, 6.5)
  expect_identical(meta$note, "\u6c34\u58a8\u753b")

  # A PIL image as input; and Pillow sees our chunks.
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(im, out, meta = list(prompt = "Georgia O\u2019Keeffe", steps = 2L))
  info <- Image$open(out)$info
  expect_identical(reticulate::py_str(info$Description), "Georgia O\u2019Keeffe")
  expect_identical(info$steps, "2")
  expect_null(info$prompt)
  expect_identical(as.list(png_read_meta(out)), list(prompt = "Georgia O\u2019Keeffe", steps = 2L))
})

test_that("other tools' files are recognised and their settings read", {
  ot <- function(...) fixture("other-tools", ...)
  cases <- list(
    list(ot("AUTOMATIC1111", "automatic1111_cropped.png"), "a1111",
         list(prompt = "photo of a duck", negative_prompt = "monochrome", seed = 235284042,
              steps = 15L, guidance_scale = 5, width = 512L, height = 400L, sampler = "UniPC")),
    list(ot("AUTOMATIC1111", "automatic1111_cropped.jpg"), "a1111",
         list(prompt = "photo of a duck", seed = 235284042, steps = 15L,
              model = "realistic_realisticVisionV20_v20")),
    list(ot("AUTOMATIC1111", "automatic1111_stealth.png"), "a1111",
         list(prompt = "a circle", negative_prompt = "a square", seed = 2015833630,
              steps = 20L, clip_skip = 1L)),
    list(ot("ComfyUI", "img2img_cropped.png"), "comfyui",
         list(seed = 280823642470253, steps = 20L, guidance_scale = 8,
              negative_prompt = "watermark, text\n", strength = 0.8700000000000001)),
    list(ot("ComfyUI", "unclip_2pass_cropped.png"), "comfyui",
         list(seed = 1106257833005336, steps = 26L, width = 1280L, height = 704L)),
    list(ot("ComfyUI", "night_evening_day_morning_cropped.png"), "comfyui",
         list(seed = 335608130539327, steps = 13L, guidance_scale = 8.5)),
    list(ot("ComfyUI", "noisy_latents_3_subjects_cropped.png"), "comfyui",
         list(model = "Anything-V3.0.ckpt")),
    list(ot("Fooocus", "fooocus1_cropped.png"), "fooocus",
         list(prompt = "a smiling goldfish", seed = "6952411511246973023", steps = 30L,
              guidance_scale = 4, width = 768L, height = 1280L,
              model = "juggernautXL_v8Rundiffusion", clip_skip = 1L)),
    list(ot("InvokeAI", "invokeai_imeta1.png"), "invokeai",
         list(prompt = "digital artwork, oil painting. painterly brushstrokes, holidays,",
              seed = 3293022630, steps = 35L, guidance_scale = 8, width = 1024L,
              model = "juggernautXL", scheduler = "euler")),
    list(ot("InvokeAI", "invokeai_sdmeta1.png"), "invokeai",
         list(seed = 2980747362, steps = 50L, guidance_scale = 5, width = 512L, height = 768L,
              negative_prompt = "rendering, glowing eyes, skinny", model = "deliberateForInvoke_v08")),
    list(ot("InvokeAI", "invokeai_dream1.png"), "invokeai",
         list(seed = 2980747362, steps = 50L, width = 512L, height = 768L, sampler = "k_lms")),
    list(ot("NovelAI", "novelai1_cropped.png"), "novelai",
         list(prompt = "masterpiece, best quality,  cat, space, icon", seed = 2253955223,
              steps = 50L, guidance_scale = 10, sampler = "k_euler_ancestral")),
    # A1111's infotext in a WebP's EXIF UserComment, in a big-endian EXIF block.
    list(fixture("hand-written", "a1111_exif_bigendian.webp"), "a1111",
         list(prompt = "a red fox in the snow", negative_prompt = "blurry", seed = 12345,
              steps = 20L, guidance_scale = 7, width = 512L, height = 512L,
              model = "fox_model", sampler = "Euler a"))
  )
  for (case in cases) {
    meta <- png_read_meta(case[[1]])
    expect_identical(attr(meta, "tool"), case[[2]], info = case[[1]])
    for (key in names(case[[3]])) {
      expect_identical(meta[[key]], case[[3]][[key]], info = paste(case[[1]], key))
    }
    expect_true(length(attr(meta, "chunks")) > 0, info = case[[1]])
  }
})

test_that("SwarmUI parameters are read", {
  params <- paste0(
    '{"sui_image_params": {"prompt": "a red fox, snow", "negativeprompt": "blurry", ',
    '"model": "OfficialStableDiffusion/sd_xl_base_1.0", "seed": 1234567890123, ',
    '"steps": 30, "cfgscale": 6.5, "width": 1024, "height": 768, "sampler": "euler", ',
    '"scheduler": "karras", "clipstopatlayer": -2, "initimagecreativity": 0.6, ',
    '"swarm_version": "0.9.2"}, "sui_extra_data": {"date": "2024-01-01"}}'
  )
  src <- local_png()
  ch <- tiny_png_chunks()
  path <- write_bytes(png_bytes(ch$ihdr, rdiffusers:::png_text_chunk("parameters", params),
                                ch$idat, ch$iend))
  meta <- png_read_meta(path)
  expect_identical(attr(meta, "tool"), "swarmui")
  expect_identical(meta$prompt, "a red fox, snow")
  expect_identical(meta$seed, 1234567890123)
  expect_identical(meta$guidance_scale, 6.5)
  expect_identical(meta$height, 768L)
  # SwarmUI counts CLIP layers from the end, negatively: -2 skips one.
  expect_identical(meta$clip_skip, 1L)
  expect_identical(meta$strength, 0.6)
})

test_that("InvokeAI 2 negative groups are all kept", {
  split <- invoke_split_prompt("a cat [blurry] on a mat [ugly, bad]")
  expect_identical(split$prompt, "a cat on a mat")
  expect_identical(split$negative, "blurry, ugly, bad")
})

test_that("a corrupt typed chunk falls back to the other chunks with a warning", {
  ch <- tiny_png_chunks()
  path <- write_bytes(png_bytes(
    ch$ihdr,
    rdiffusers:::png_text_chunk("rdiffusers", '{"format":"rdiffusers","meta":{"t":"nonsense"'),
    rdiffusers:::png_text_chunk("parameters", "a fox\nSteps: 4, Sampler: Euler, Seed: 9"),
    ch$idat, ch$iend
  ))
  expect_warning(meta <- png_read_meta(path), class = "rdiffusers_warning_metadata")
  expect_identical(attr(meta, "tool"), "a1111")
  expect_identical(meta$steps, 4L)
})

test_that("forcing a format that is absent is a classed error", {
  expect_error(png_read_meta(local_png(), format = "comfyui"), class = "rdiffusers_error_metadata")
  expect_error(png_read_meta(local_png(), format = "nope"), "`format` must be one of",
               class = "rdiffusers_error_input")
})

test_that("print() shows the tool and the entries", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = list(prompt = "a fox", steps = 2L, loras = list()))
  expect_snapshot(print(png_read_meta(out)))
})

test_that("settings are found by their exact names, never by a prefix", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = list(prompt_style = "ugly style", seed = 1, steps = 2L,
                                       guidance_scale = 7, loras = list(list(name_x = "n"))))
  raw <- png_read_meta(out, format = "raw")
  expect_null(raw$Description)
  expect_false(grepl("ugly style", raw$parameters, fixed = TRUE))
  expect_match(raw$parameters, "^Steps: 2, CFG scale: 7, Seed: 1")
})

test_that("ComfyUI: custom samplers are followed, zeroed negatives are empty", {
  link <- function(id) list(id, 0L)
  graph <- list(
    `1` = list(class_type = "CLIPTextEncode", inputs = list(text = "a red fox")),
    `2` = list(class_type = "ConditioningZeroOut", inputs = list(conditioning = link("1"))),
    `3` = list(class_type = "KSamplerSelect", inputs = list(sampler_name = "euler")),
    `4` = list(class_type = "RandomNoise", inputs = list(noise_seed = 42)),
    `5` = list(class_type = "CFGGuider", inputs = list(positive = link("1"),
                                                       negative = link("2"), cfg = 3.5)),
    `6` = list(class_type = "BasicScheduler", inputs = list(scheduler = "simple", steps = 20L,
                                                            denoise = 1)),
    `7` = list(class_type = "EmptyLatentImage", inputs = list(width = 1024L, height = 768L)),
    `9` = list(class_type = "SamplerCustomAdvanced",
               inputs = list(noise = link("4"), guider = link("5"), sampler = link("3"),
                             sigmas = link("6"), latent_image = link("7")))
  )
  meta <- normalize_comfyui(graph)
  expect_identical(meta$prompt, "a red fox")
  expect_identical(meta$negative_prompt, "")
  expect_equal(meta$seed, 42)
  expect_identical(meta$steps, 20L)
  expect_equal(meta$guidance_scale, 3.5)
  expect_identical(c(meta$width, meta$height), c(1024L, 768L))
  expect_identical(meta$sampler, "euler")
  expect_identical(meta$schedule_type, "simple")
})

test_that("ComfyUI settings fed from other nodes (primitives, seed nodes) are followed", {
  link <- function(id) list(id, 0L)
  graph <- list(
    `4` = list(class_type = "CheckpointLoaderSimple", inputs = list(ckpt_name = "sd15.safetensors")),
    `5` = list(class_type = "EmptyLatentImage", inputs = list(width = 512L, height = 512L)),
    `6` = list(class_type = "CLIPTextEncode", inputs = list(text = link("20"), clip = link("4"))),
    `7` = list(class_type = "CLIPTextEncode", inputs = list(text = "blurry", clip = link("4"))),
    `3` = list(class_type = "KSampler", inputs = list(
      seed = link("21"), steps = link("22"), cfg = 7, sampler_name = "euler",
      scheduler = "normal", denoise = 1, model = link("4"), positive = link("6"),
      negative = link("7"), latent_image = link("5"))),
    `20` = list(class_type = "PrimitiveString", inputs = list(value = "a linked prompt")),
    `21` = list(class_type = "Seed (rgthree)", inputs = list(seed = 777)),
    `22` = list(class_type = "PrimitiveInt", inputs = list(value = 25L))
  )
  # The first sampler is the one with the lowest id, whatever the JSON order;
  # a size can come from a primitive too.
  graph$`10` <- list(class_type = "KSampler", inputs = list(seed = 1, steps = 99L))
  graph <- graph[c("10", setdiff(names(graph), "10"))]
  graph$`5`$inputs$width <- link("23")
  graph$`23` <- list(class_type = "PrimitiveInt", inputs = list(value = 640L))
  meta <- normalize_comfyui(graph)
  expect_identical(meta$width, 640L)
  expect_identical(meta$prompt, "a linked prompt")
  expect_identical(meta$negative_prompt, "blurry")
  expect_equal(meta$seed, 777)
  expect_identical(meta$steps, 25L)
  expect_identical(meta$model, "sd15.safetensors")
})

test_that("a ComfyUI graph that says nothing yields to an A1111 text beside it", {
  chunks <- tiny_png_chunks()
  graph <- '{"3": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}}'
  path <- write_bytes(png_bytes(
    chunks$ihdr,
    rdiffusers:::png_text_chunk("prompt", graph),
    rdiffusers:::png_text_chunk("parameters", "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5"),
    chunks$idat, chunks$iend))
  meta <- png_read_meta(path)
  expect_identical(attr(meta, "tool"), "a1111")
  expect_identical(meta$prompt, "a cat")
})

test_that("ComfyUI seeds up to 2^64 - 1 keep every digit", {
  chunks <- tiny_png_chunks()
  graph <- paste0('{"3": {"class_type": "KSampler", "inputs": {"seed": 18446744073709551615, ',
                  '"steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal"}}, ',
                  '"4": {"class_type": "Note", "inputs": {"text": "seed 12345678901234567890"}}}')
  path <- write_bytes(png_bytes(chunks$ihdr, rdiffusers:::png_text_chunk("prompt", graph),
                                chunks$idat, chunks$iend))
  meta <- png_read_meta(path)
  expect_identical(attr(meta, "tool"), "comfyui")
  expect_identical(meta$seed, "18446744073709551615")
  expect_identical(meta$steps, 20L)
  json <- parse_json_loose('{"a": -9223372036854775809, "b": "x 99999999999999999999", "c": 1.25e20}')
  expect_identical(json, list(a = "-9223372036854775809", b = "x 99999999999999999999", c = 1.25e20))
})

test_that("a prompt chunk holding JSON that is no ComfyUI graph is read as text", {
  chunks <- tiny_png_chunks()
  path <- write_bytes(png_bytes(
    chunks$ihdr,
    rdiffusers:::png_text_chunk("prompt", '["a cat", "a dog"]'),
    rdiffusers:::png_text_chunk("seed", "5"),
    chunks$idat, chunks$iend))
  meta <- png_read_meta(path)
  expect_identical(attr(meta, "tool"), "unknown")
  expect_identical(as.list(meta), list(prompt = '["a cat", "a dog"]', seed = 5))
})

test_that("InvokeAI Dream flags are read after the quoted prompt", {
  chunks <- tiny_png_chunks()
  path <- write_bytes(png_bytes(
    chunks$ihdr,
    rdiffusers:::png_text_chunk("Dream", '"portrait -S 5 of a cat" -s 50 -S 42 -W 512 -H 512'),
    chunks$idat, chunks$iend))
  meta <- png_read_meta(path)
  expect_equal(meta$seed, 42)
  expect_identical(meta$steps, 50L)
  expect_identical(meta$prompt, "portrait -S 5 of a cat")
})

test_that("big seeds in other tools' JSON keep every digit, whatever the prompt holds", {
  chunks <- tiny_png_chunks()
  graph <- paste0(
    '{"1": {"class_type": "KSampler", "inputs": {"seed": 123456789012345678, "steps": 20,',
    ' "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0],',
    ' "negative": ["3", 0], "denoise": 1}},',
    ' "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "serial: 1234567890123456, x"}},',
    ' "3": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}}}')
  path <- write_bytes(png_bytes(chunks$ihdr, rdiffusers:::png_text_chunk("prompt", graph),
                                chunks$idat, chunks$iend))
  meta <- png_read_meta(path)
  expect_identical(meta$seed, "123456789012345678")
  expect_identical(meta$prompt, "serial: 1234567890123456, x")
})

test_that("values that would not round-trip, bad formats and folders are classed errors", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  for (v in list(Sys.time(), Sys.Date(), matrix(1:4, 2), data.frame(a = 1),
                 as.difftime(5, units = "mins"))) {
    expect_error(png_write_meta(src, out, meta = list(created = v)),
                 class = "rdiffusers_error_input")
  }
  expect_false(file.exists(out))
  # A factor is kept as its labels.
  png_write_meta(src, out, meta = list(style = factor(c("oil", "ink", "oil"))))
  expect_identical(png_read_meta(out)$style, c("oil", "ink", "oil"))
  unlink(out)
  for (f in list("xmp", NA, c("auto", "raw"), 1)) {
    expect_error(png_read_meta(src, format = f), class = "rdiffusers_error_input")
  }
  expect_error(png_write_meta(tempdir(), out, meta = list(a = 1)),
               class = "rdiffusers_error_file")
  skip_if_not(dir.exists("/proc") && !rdiffusers:::dir_writable("/proc"))
  expect_error(png_write_meta(src, "/proc/x.png", meta = list(a = 1)),
               class = "rdiffusers_error_file")
})
