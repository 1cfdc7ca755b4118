test_that("image inputs of every form become PNG files of the right size", {
  dir <- withr::local_tempdir()
  arr <- array(runif(24 * 40 * 3), c(24, 40, 3))
  f <- as_image_file(arr, dir)
  expect_identical(c(f$width, f$height), c(40L, 24L))
  expect_equal(png::readPNG(f$path), arr, tolerance = 1 / 255)

  # 0-255 values (and integer storage) are scaled by 255.
  f255 <- as_image_file(round(arr * 255), dir)
  expect_identical(png::readPNG(f255$path), png::readPNG(f$path))
  int_arr <- array(as.integer(round(arr * 255)), dim(arr))
  expect_identical(png::readPNG(as_image_file(int_arr, dir)$path), png::readPNG(f$path))
  # ... which makes an integer 0/1 mask nearly black (keep all): a warning.
  m <- matrix(0L, 8, 8)
  m[3:6, 3:6] <- 1L
  expect_warning(mi <- as_image_file(m, dir, what = "mask"), "integer array of 0s and 1s",
                 class = "rdiffusers_warning")
  expect_identical(max(png::readPNG(mi$path)), 1 / 255)
  expect_no_warning(as_image_file(m == 1L, dir, what = "mask"))
  expect_no_warning(as_image_file(m * 255L, dir, what = "mask"))

  # A raster keeps orientation: row 1 is the top.
  r <- as.raster(arr)
  expect_identical(png::readPNG(as_image_file(r, dir)$path), png::readPNG(f$path))
  # So does a nativeRaster (png::readPNG(native = TRUE)).
  nr <- png::readPNG(f$path, native = TRUE)
  fn <- as_image_file(nr, dir)
  expect_identical(c(fn$width, fn$height), c(40L, 24L))
  px <- png::readPNG(fn$path)
  expect_identical(px[, , 1:3], png::readPNG(f$path))
  expect_true(all(px[, , 4] == 1))   # opaque alpha added by writePNG()

  # PNG paths and sd_images are used in place; sizes read from the header.
  p <- as_image_file(f$path, dir)
  expect_identical(c(p$width, p$height), c(40L, 24L))
  img <- structure(list(path = f$path, meta = list()), class = "sd_image")
  expect_identical(as_image_file(img, dir)$path, p$path)
  # imgs[1] where imgs[[1]] was meant is that image; two images are not one.
  expect_identical(as_image_file(new_sd_images(list(img)), dir)$path, p$path)
  expect_error(as_image_file(new_sd_images(list(img, img)), dir), "one image, not an <sd_images> of 2",
               class = "rdiffusers_error_input")

  # Logical masks: TRUE = repaint = white.
  m <- matrix(FALSE, 16, 8)
  m[1:4, ] <- TRUE
  mf <- as_image_file(m, dir, what = "mask")
  mp <- png::readPNG(mf$path)
  expect_identical(c(mf$width, mf$height), c(8L, 16L))
  expect_true(all(mp[1:4, ] == 1) && all(mp[5:16, ] == 0))
})

test_that("JPEG sizes are read from the header, magick images are converted", {
  skip_if_not_installed_ci("magick")
  dir <- withr::local_tempdir()
  img <- magick::image_blank(72, 40, "red")
  jpg <- file.path(dir, "x.jpg")
  magick::image_write(img, jpg, format = "jpeg")
  j <- as_image_file(jpg, dir)
  expect_identical(c(j$width, j$height), c(72L, 40L))
  expect_identical(j$path, normalizePath(jpg, winslash = "/"))
  m <- as_image_file(img, dir)
  expect_identical(c(m$width, m$height), c(72L, 40L))
  px <- png::readPNG(m$path)
  expect_equal(px[1, 1, 1:3], c(1, 0, 0))
})

test_that("bad inputs are classed input errors", {
  dir <- withr::local_tempdir()
  txt <- withr::local_tempfile(fileext = ".png", lines = "not an image")
  expect_error(as_image_file(file.path(dir, "absent.png"), dir), class = "rdiffusers_error_input")
  expect_error(as_image_file(dir, dir), "is a directory", class = "rdiffusers_error_file")
  # Neither PNG, JPEG nor anything magick reads: the message says which.
  with_magick <- requireNamespace("magick", quietly = TRUE)
  expect_error(as_image_file(txt, dir),
               if (with_magick) "cannot read it either" else "when it is installed",
               class = "rdiffusers_error_input")
  expect_error(as_image_file(array(0.5, c(4, 4, 2)), dir), class = "rdiffusers_error_input")
  expect_error(as_image_file(array(300, c(4, 4, 3)), dir), class = "rdiffusers_error_input")
  expect_error(as_image_file(array(NA_real_, c(4, 4, 3)), dir), class = "rdiffusers_error_input")
  expect_error(as_image_file(list(1), dir), class = "rdiffusers_error_input")
  expect_error(as_image_file(matrix(TRUE, 2, 2), dir), class = "rdiffusers_error_input")
  expect_error(sd_img2img(array(0, c(8, 8, 3)), "a", strength = 0), class = "rdiffusers_error_input")
  expect_error(sd_img2img(array(0, c(8, 8, 3)), "a", strength = 1.5), class = "rdiffusers_error_input")
  expect_error(sd_img2img(array(0, c(8, 8, 3)), "a", strength = NA), class = "rdiffusers_error_input")
  expect_error(sd_inpaint(array(0, c(8, 8, 3)), matrix(TRUE, 8, 8), "a", keep_unmasked = NA),
               class = "rdiffusers_error_input")
  expect_snapshot(error = TRUE, {
    sd_inpaint(array(0, c(16, 16, 3)), matrix(TRUE, 8, 16), "a cat")
    sd_img2img(array(0, c(8, 8, 3)), "a cat", strength = 0)
  })
})

test_that("a side too large to generate is blamed on the image, unless a size is given", {
  expect_error(check_input_size(list(width = 20000L, height = 10L), NULL, NULL),
               "`image` is 20000 x 10 pixels", class = "rdiffusers_error_input")
  expect_error(check_input_size(list(width = 10L, height = 16391L), 64L, NULL), NA)
  expect_error(check_input_size(list(width = 10L, height = 16392L), 64L, NULL),
               class = "rdiffusers_error_input")
  expect_error(check_input_size(list(width = 20000L, height = 10L), 512L, NULL), NA)
})

i2i <- function(image, seed = 3, ...) {
  sd_img2img(image, "a castle", model = "tiny", steps = 2, seed = seed,
             progress = FALSE, ...)
}

test_that("img2img is deterministic per seed, uses the input, and records it", {
  skip_if_no_python()
  init <- sd_generate("a hill", model = "tiny", width = 64, height = 64, steps = 2,
                      seed = 1, progress = FALSE)
  a <- i2i(init, strength = 0.5)
  b <- i2i(init, strength = 0.5)
  expect_identical(pixels_of(a), pixels_of(b))
  expect_false(identical(pixels_of(i2i(init, seed = 4, strength = 0.5)), pixels_of(a)))
  expect_false(identical(pixels_of(i2i(init, strength = 1)), pixels_of(a)))
  other <- array(0.2, c(64, 64, 3))
  expect_false(identical(pixels_of(i2i(other, strength = 0.5)), pixels_of(a)))
  expect_identical(a$meta$task, "img2img")
  expect_identical(a$meta$strength, 0.5)
  expect_identical(a$meta$init_image_sha256, init$meta$pixel_sha256)
  expect_identical(dim(pixels_of(a))[1:2], c(64L, 64L))
})

test_that("a preset's steps are raised so that steps x strength runs a step", {
  skip_if_no_python()
  init <- array(0.4, c(64, 64, 3))
  # The tiny preset's 2 steps at strength 0.3 would run int(0.6) = 0 steps.
  img <- sd_img2img(init, "a hill", model = "tiny", strength = 0.3, seed = 1,
                    output_dir = withr::local_tempdir(), progress = FALSE)
  expect_identical(img$meta$steps, 4L)
  # Steps the user chose are theirs: too few is an error that says so.
  expect_error(sd_img2img(init, "a hill", model = "tiny", strength = 0.3, steps = 2,
                          seed = 1, output_dir = withr::local_tempdir(), progress = FALSE),
               "steps x strength", class = "rdiffusers_error_input")
})

test_that("a preset's strength is img2img's; inpainting repaints fully", {
  local_ns_mock(presets_list = function(...) list(turbo = list(strength = 0.5)))
  expect_identical(preset_strength("turbo", "img2img"), 0.5)
  expect_null(preset_strength("turbo", "inpaint"))
  expect_null(preset_strength("other", "img2img"))
})

test_that("a preset's scheduler is used when none is given", {
  skip_if_no_python()
  real <- presets_list
  local_ns_mock(presets_list = function(...) {
    p <- real(...)
    p$tiny$scheduler <- "Euler a"
    p
  })
  dir <- withr::local_tempdir()
  img <- sd_generate("a cat", model = "tiny", width = 64, height = 64, steps = 2, seed = 1,
                     output_dir = dir, progress = FALSE)
  expect_identical(img$meta$scheduler, "EulerAncestralDiscreteScheduler")
  img <- sd_generate("a cat", model = "tiny", width = 64, height = 64, steps = 2, seed = 1,
                     scheduler = "DDIM", output_dir = dir, progress = FALSE)
  expect_identical(img$meta$scheduler, "DDIMScheduler")
})

test_that("every image form gives the same img2img result as its PNG file", {
  skip_if_no_python()
  arr <- array(runif(64 * 48 * 3), c(64, 48, 3))
  path <- withr::local_tempfile(fileext = ".png")
  png::writePNG(arr, path)
  ref <- pixels_of(i2i(path, strength = 0.6))
  expect_identical(dim(ref)[1:2], c(64L, 48L))
  expect_identical(pixels_of(i2i(png::readPNG(path), strength = 0.6)), ref)
  expect_identical(pixels_of(i2i(png::readPNG(path) * 255, strength = 0.6)), ref)
  expect_identical(pixels_of(i2i(as.raster(png::readPNG(path)), strength = 0.6)), ref)
  skip_if_not_installed_ci("magick")
  expect_identical(pixels_of(i2i(magick::image_read(path), strength = 0.6)), ref)
})

test_that("odd sizes are resized to a multiple of 8", {
  skip_if_no_python()
  img <- i2i(array(0.5, c(61, 70, 3)), strength = 0.6)
  expect_identical(dim(pixels_of(img))[1:2], c(56L, 64L))
  expect_identical(c(img$meta$width, img$meta$height), c(64L, 56L))
})

test_that("inpainting keeps the unmasked pixels exactly, unless told not to", {
  skip_if_no_python()
  init <- sd_generate("a hill", model = "tiny", width = 64, height = 64, steps = 2,
                      seed = 1, progress = FALSE)
  mask <- matrix(FALSE, 64, 64)
  mask[17:48, 17:48] <- TRUE
  inp <- function(...) {
    sd_inpaint(init, mask, "a red door", model = "tiny", steps = 2, seed = 5,
               progress = FALSE, ...)
  }
  out <- inp()
  before <- pixels_of(init)
  after <- pixels_of(out)
  keep <- array(!mask, dim(before))
  expect_identical(after[keep], before[keep])
  expect_false(identical(after[!keep], before[!keep]))
  expect_identical(out$meta$task, "inpaint")
  expect_true(out$meta$keep_unmasked)
  expect_match(out$meta$mask_sha256, "^[0-9a-f]{64}$")
  expect_identical(pixels_of(inp()), after)

  loose <- inp(keep_unmasked = FALSE)
  expect_false(identical(pixels_of(loose)[keep], before[keep]))
  expect_false(loose$meta$keep_unmasked)
})

test_that("txt2img, img2img and inpaint share one cached pipeline", {
  skip_if_no_python()
  sd_free()
  init <- sd_generate("a hill", model = "tiny", width = 64, height = 64, steps = 2,
                      seed = 1, progress = FALSE)
  i2i(init, strength = 0.5)
  sd_inpaint(init, matrix(TRUE, 64, 64), "a door", model = "tiny", steps = 2, seed = 1,
             progress = FALSE)
  cached <- sd_pipelines()
  expect_identical(nrow(cached), 1L)
  expect_identical(cached$model, "tiny")
})

test_that("a JPEG's EXIF orientation gives the upright size", {
  skip_if_no_python()
  # A 128 x 64 JPEG written by Pillow with the given EXIF orientation.
  jpeg <- function(orientation) {
    path <- withr::local_tempfile(fileext = ".jpg", .local_envir = parent.frame())
    reticulate::py_run_string(sprintf(paste(
      "from PIL import Image",
      "exif = Image.Exif()",
      "exif[0x0112] = %d",
      "Image.new('RGB', (128, 64), (200, 30, 30)).save(%s, exif=exif.tobytes())",
      sep = "\n"), orientation, deparse(path)))
    path
  }
  # Orientations 5 to 8 turn the image a quarter; 1 to 4 do not.
  for (orientation in 1:8) {
    expect_identical(rdiffusers:::image_file_size(jpeg(orientation)),
                     if (orientation >= 5) c(64L, 128L) else c(128L, 64L), label = orientation)
  }
  path <- jpeg(6)
  img <- sd_img2img(path, "a fox", model = "tiny", steps = 2, strength = 0.5, seed = 1,
                    output_dir = withr::local_tempdir(), progress = FALSE)
  expect_identical(c(img$meta$width, img$meta$height), c(64L, 128L))
})

test_that("a PNG header claiming sides past R's integers is an input error", {
  skip_if_no_python()
  path <- withr::local_tempfile(fileext = ".png")
  png::writePNG(array(0.5, c(8, 8, 3)), path)
  bytes <- readBin(path, "raw", file.size(path))
  bytes[17:20] <- as.raw(0xff)  # IHDR width 2^32 - 1
  writeBin(bytes, path)
  expect_identical(rdiffusers:::image_file_size(path), c(2^32 - 1, 8))
  expect_error(sd_img2img(path, "a fox", model = "tiny", progress = FALSE),
               "4294967295 x 8", class = "rdiffusers_error_input")
})
