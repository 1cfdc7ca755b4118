# A solid-colour PNG wrapped as an sd_image: display never needs Python.
local_png_image <- function(col = c(1, 0, 0), width = 12L, height = 8L,
                            seed = 1, .env = parent.frame()) {
  path <- withr::local_tempfile(fileext = ".png", .local_envir = .env)
  a <- array(rep(col, each = width * height), c(height, width, 3))
  # A gradient in green so rows and columns are distinguishable.
  a[, , 2] <- outer(seq_len(height) / height, seq_len(width) / width) * 0.5
  png::writePNG(a, path)
  structure(list(path = path, meta = list(seed = seed)), class = "sd_image")
}

# Plots into a png device and returns its pixels (H x W x channels).
plot_pixels <- function(x, ..., width = 200, height = 150) {
  path <- withr::local_tempfile(fileext = ".png")
  grDevices::png(path, width = width, height = height, bg = "white")
  plot(x, ...)
  grDevices::dev.off()
  png::readPNG(path)
}

# Share of pixels close to a colour.
colour_share <- function(px, col, tol = 0.15) {
  near <- abs(px[, , 1] - col[[1]]) < tol & abs(px[, , 3] - col[[3]]) < tol
  mean(near)
}

test_that("as.array() gives H x W x 3 values equal to the PNG's", {
  img <- local_png_image(width = 12L, height = 8L)
  a <- as.array(img)
  expect_identical(dim(a), c(8L, 12L, 3L))
  expect_equal(a, png::readPNG(img$path))
})

test_that("as.raster() gives a height x width raster of the PNG's colours", {
  img <- local_png_image(width = 12L, height = 8L)
  r <- as.raster(img)
  expect_s3_class(r, "raster")
  expect_identical(dim(r), c(8L, 12L))
  a <- png::readPNG(img$path)
  expect_identical(as.vector(r), as.vector(grDevices::as.raster(a)))
  # Top-left pixel: red, almost no green.
  expect_identical(toupper(as.matrix(r)[1, 1]), grDevices::rgb(a[1, 1, 1], a[1, 1, 2], a[1, 1, 3]))
})

test_that("an sd_images of one image converts like the image; of more, an error says to pick one", {
  one <- local_png_image(width = 12L, height = 8L)
  two <- local_png_image(width = 6L, height = 4L)
  imgs <- new_sd_images(list(one, two))
  expect_identical(as.array(imgs[2]), as.array(two))
  expect_identical(as.raster(imgs[1]), as.raster(one))
  expect_error(as.array(imgs), "one image", class = "rdiffusers_error_input")
  expect_error(as.raster(imgs), "one image", class = "rdiffusers_error_input")
})

test_that("images with alpha or grey channels still come back as RGB", {
  path <- withr::local_tempfile(fileext = ".png")
  png::writePNG(array(0.5, c(4, 5, 4)), path)
  img <- structure(list(path = path, meta = list()), class = "sd_image")
  expect_identical(dim(as.array(img)), c(4L, 5L, 3L))
  png::writePNG(matrix(0.25, 4, 5), path)
  expect_identical(dim(as.array(img)), c(4L, 5L, 3L))
})

test_that("grey images with transparency come back as RGB, their alpha kept apart", {
  path <- withr::local_tempfile(fileext = ".png")
  grey <- matrix(seq(0, 1, length.out = 20), 4, 5)
  png::writePNG(array(c(grey, matrix(0.5, 4, 5)), c(4, 5, 2)), path)
  img <- structure(list(path = path, meta = list()), class = "sd_image")
  a <- as.array(img)
  expect_identical(dim(a), c(4L, 5L, 3L))
  expect_equal(a[, , 2], grey, tolerance = 1 / 255)
  rgba <- read_png_array(path, alpha = TRUE)
  expect_equal(rgba[, , 4], matrix(0.5, 4, 5), tolerance = 1 / 255)
})

test_that("several images are laid out in rows of ncol", {
  imgs <- new_sd_images(list(local_png_image(col = c(1, 0, 0)), local_png_image(col = c(0, 1, 0)),
                             local_png_image(col = c(0, 0, 1))))
  px <- plot_pixels(imgs, ncol = 2, labels = c("", "", ""), width = 200, height = 200)
  # Three images in two columns: the blue one starts the second row.
  bottom_left <- px[101:200, 1:100, ]
  expect_gt(colour_share(bottom_left, c(0, 0, 1)), 0.05)
})

test_that("a missing image file is a file error", {
  img <- structure(list(path = tempfile(fileext = ".png"), meta = list()), class = "sd_image")
  expect_error(as.array(img), class = "rdiffusers_error_file")
  expect_error(plot(img), class = "rdiffusers_error_file")
})

test_that("plot() draws the image's pixels on the current device", {
  img <- local_png_image(col = c(1, 0, 0))
  px <- plot_pixels(img)
  # The image fills a good part of the device, the rest stays white.
  expect_gt(colour_share(px, c(1, 0, 0)), 0.3)
  expect_gt(colour_share(px, c(1, 1, 1), tol = 0.01), 0.05)
  grDevices::png(withr::local_tempfile(fileext = ".png"))
  expect_invisible(plot(img))
  grDevices::dev.off()
})

test_that("plot() of several images draws a grid with every image", {
  red <- local_png_image(col = c(1, 0, 0), seed = 1)
  blue <- local_png_image(col = c(0, 0, 1), seed = 2)
  imgs <- structure(list(red, blue), class = "sd_images")
  px <- plot_pixels(imgs, width = 300, height = 150)
  expect_gt(colour_share(px, c(1, 0, 0)), 0.1)
  expect_gt(colour_share(px, c(0, 0, 1)), 0.1)
  # ncol = 1 stacks them: red above blue.
  px <- plot_pixels(imgs, ncol = 1, labels = FALSE, width = 150, height = 300)
  top <- px[1:140, , ]
  bottom <- px[161:300, , ]
  expect_gt(colour_share(top, c(1, 0, 0)), colour_share(top, c(0, 0, 1)))
  expect_gt(colour_share(bottom, c(0, 0, 1)), colour_share(bottom, c(1, 0, 0)))
})

test_that("plot() of several images checks its arguments", {
  red <- local_png_image()
  imgs <- structure(list(red, red), class = "sd_images")
  expect_error(plot(imgs, labels = "one"), class = "rdiffusers_error_input")
  expect_error(plot(imgs, ncol = 0), class = "rdiffusers_error_input")
  expect_error(plot(imgs, ncol = Inf), class = "rdiffusers_error_input")
  expect_error(plot(imgs, ncol = 1.7), class = "rdiffusers_error_input")
  expect_error(plot(structure(list(), class = "sd_images")), class = "rdiffusers_error_input")
})

test_that("as_magick() reads the PNG files", {
  skip_if_not_installed_ci("magick")
  img <- local_png_image(width = 12L, height = 8L)
  m <- as_magick(img)
  expect_s3_class(m, "magick-image")
  info <- magick::image_info(m)
  expect_identical(c(info$width, info$height), c(12L, 8L))
  m2 <- as_magick(structure(list(img, img), class = "sd_images"))
  expect_identical(length(m2), 2L)
  expect_error(as_magick("x.png"), class = "rdiffusers_error_input")
})

test_that("knit_print() includes the image as a figure of the chunk", {
  skip_if_not_installed_ci("knitr")
  img <- local_png_image()
  # Outside a chunk: the image's own path.
  out <- knit_print.sd_image(img, options = list(fig.path = NULL))
  expect_s3_class(out, "knit_asis")
  expect_match(out, basename(img$path), fixed = TRUE)

  # In a chunk: copied next to the document's figures.
  dir <- withr::local_tempdir()
  opts <- knitr::opts_chunk$get()
  opts$label <- "lighthouse"
  opts$fig.path <- file.path(dir, "figure/")
  img2 <- local_png_image(col = c(0, 0, 1))
  out <- knit_print.sd_images(structure(list(img, img2), class = "sd_images"), options = opts)
  expect_s3_class(out, "knit_asis")
  copies <- list.files(file.path(dir, "figure"), full.names = TRUE)
  expect_length(copies, 2)
  expect_setequal(unname(tools::md5sum(copies)), unname(tools::md5sum(c(img$path, img2$path))))
  expect_setequal(basename(out), basename(copies))

  # Images printed one by one in the same chunk do not overwrite each other.
  img3 <- local_png_image(col = c(0, 1, 0))
  out1 <- knit_print.sd_image(img2, options = opts)
  out3 <- knit_print.sd_image(img3, options = opts)
  # Printed again (a document knitted again): the copy, not the temporary file.
  expect_identical(dirname(as.character(out1)), normalizePath(file.path(dir, "figure"), mustWork = FALSE))
  copies <- list.files(file.path(dir, "figure"), full.names = TRUE)
  expect_length(copies, 3)
  expect_setequal(unname(tools::md5sum(copies)),
                  unname(tools::md5sum(c(img$path, img2$path, img3$path))))
})

test_that("a generated image converts and plots", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  img <- sd_generate("a red square", model = "tiny", seed = 1, steps = 2,
                     width = 64, height = 64, output_dir = out, progress = FALSE)
  a <- as.array(img)
  expect_identical(dim(a), c(64L, 64L, 3L))
  expect_identical(dim(as.raster(img)), c(64L, 64L))
  px <- plot_pixels(img, width = 100, height = 100)
  # The device is not blank: the generated noise shows.
  expect_gt(stats::sd(px[, , 1]), 0.01)
})

test_that("chunk options written as R code reach the images, as for include_graphics()", {
  skip_if_not_installed_ci("knitr")
  dir <- withr::local_tempdir()
  a <- local_png_image()
  b <- local_png_image(col = c(0, 0, 1))
  rmd <- file.path(dir, "doc.Rmd")
  writeLines(c(
    "```{r, include = FALSE}",
    sprintf('a <- rdiffusers::new_sd_image("%s"); b <- rdiffusers::new_sd_image("%s")', a$path, b$path),
    "```",
    "```{r one, fig.cap = paste('Seed', 6 * 7)}",
    "a",
    "```",
    "```{r two, fig.alt = sprintf('alt %d', 1:2)}",
    "c(a, b)",
    "```",
    "```{r hidden, fig.show = 'hide'}",
    "b",
    "```"
  ), rmd)
  md <- withr::with_dir(dir, knitr::knit(rmd, quiet = TRUE, envir = new.env()))
  out <- readLines(file.path(dir, md))
  expect_length(grep("Seed 42", out, fixed = TRUE), 1)
  expect_length(grep("paste", out, fixed = TRUE), 0)
  expect_length(grep('alt="alt 1"', out, fixed = TRUE), 1)
  expect_length(grep('alt="alt 2"', out, fixed = TRUE), 1)
  expect_length(grep("](figure/hidden", out, fixed = TRUE), 0)
})

test_that("in HTML documents an image is shown at its width in pixels, retina or not", {
  skip_if_not_installed_ci("rmarkdown")
  skip_if_not(rmarkdown::pandoc_available(), "no pandoc")
  dir <- withr::local_tempdir()
  a <- local_png_image(width = 12L, height = 8L)
  rmd <- file.path(dir, "doc.Rmd")
  writeLines(c(
    "---", "title: t", "---",
    "```{r, echo = FALSE}",
    sprintf('rdiffusers::new_sd_image("%s")', a$path),
    "```",
    "```{r, echo = FALSE, out.width = '50%'}",
    sprintf('rdiffusers::new_sd_image("%s")', a$path),
    "```"
  ), rmd)
  html <- rmarkdown::render(rmd, rmarkdown::html_document(self_contained = FALSE),
                            quiet = TRUE, envir = new.env())
  text <- paste(readLines(html), collapse = "\n")
  imgs <- regmatches(text, gregexpr("<img\\s[^>]*>", text))[[1]]
  expect_length(imgs, 2)
  # html_document's fig.retina = 2 would give width="6".
  expect_false(grepl("width=\"6\"", imgs[[1]]))
  expect_match(imgs[[2]], "width=\"50%\"", fixed = TRUE)
})

test_that("plot() of a reproduction draws the original left of the new image", {
  red <- local_png_image(col = c(1, 0, 0))
  blue <- local_png_image(col = c(0, 0, 1))
  red$meta$pixel_sha256 <- "a"
  blue$meta$pixel_sha256 <- "b"
  r <- new_sd_reproduction(red$path, red$meta, blue, data.frame(what = character()))
  expect_false(r$identical)
  expect_identical(r$pixels$differing, 96L)
  expect_match(format(r)[[1]], "96 pixels differ (by up to 255/255)", fixed = TRUE)
  px <- plot_pixels(r, width = 300, height = 150)
  left <- px[, 1:140, ]
  right <- px[, 161:300, ]
  expect_gt(colour_share(left, c(1, 0, 0)), 0.2)
  expect_identical(colour_share(left, c(0, 0, 1)), 0)
  expect_gt(colour_share(right, c(0, 0, 1)), 0.2)
  expect_identical(colour_share(right, c(1, 0, 0)), 0)
  grDevices::png(withr::local_tempfile(fileext = ".png"))
  expect_invisible(plot(r))
  grDevices::dev.off()
  unlink(red$path)
  expect_error(plot(r), class = "rdiffusers_error_file")
  # One pixel: singular.
  a <- png::readPNG(blue$path)
  a[1, 1, ] <- 0
  png::writePNG(a, red$path)
  one <- new_sd_reproduction(red$path, red$meta, blue, data.frame(what = character()))
  expect_match(format(one)[[1]], "1 pixel differs (by up to", fixed = TRUE)
})
