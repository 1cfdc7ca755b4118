test_that("sd_image objects hold a path and typed metadata", {
  path <- withr::local_tempfile(fileext = ".png")
  png::writePNG(array(0.5, c(8, 8, 3)), path)
  img <- new_sd_image(path, list(prompt = "a cat", seed = 42, width = 8L, height = 8L,
                                 model = "tiny"))
  expect_s3_class(img, "sd_image")
  expect_true(is_sd_image(img))
  expect_equal(img$meta$seed, 42)
  expect_match(format(img), "\"a cat\" \\| 8x8 \\| seed 42 \\| tiny")
  expect_output(out <- print(img), "sd_image")
  expect_identical(out, img)
})

test_that("new_sd_image(path) reads the file's metadata and keeps an absolute path", {
  dir <- withr::local_tempdir()
  png::writePNG(array(0.5, c(8, 8, 3)), file.path(dir, "bare.png"))
  png_write_meta(file.path(dir, "bare.png"), file.path(dir, "cat.png"),
                 meta = list(prompt = "a cat", seed = 42, width = 8L, height = 8L))
  img <- withr::with_dir(dir, new_sd_image("cat.png"))
  expect_identical(img$path, normalizePath(file.path(dir, "cat.png"), winslash = "/"))
  expect_identical(img$meta, list(prompt = "a cat", seed = 42, width = 8L, height = 8L))
  expect_match(format(img), "\"a cat\" \\| 8x8 \\| seed 42")
  # A file without settings: none; what png_read_meta() returns: a plain list.
  expect_identical(new_sd_image(file.path(dir, "bare.png"))$meta, list())
  from_read <- new_sd_image(file.path(dir, "bare.png"), png_read_meta(file.path(dir, "cat.png")))
  expect_identical(class(from_read$meta), "list")
})

test_that("a path argument's error names the argument, not its value", {
  expect_error(png_read_meta(NULL), "`path` must be a single non-empty string",
               class = "rdiffusers_error_input")
  expect_error(png_read_meta(c("a", "b")), "`path` must", class = "rdiffusers_error_input")
})

test_that("sd_image validation rejects bad input with classed errors", {
  path <- withr::local_tempfile(fileext = ".png")
  png::writePNG(array(0.5, c(8, 8, 3)), path)
  expect_error(new_sd_image(c(path, path)), class = "rdiffusers_error_input")
  expect_error(new_sd_image(NA_character_), class = "rdiffusers_error_input")
  expect_error(new_sd_image(file.path(tempdir(), "nope.png")), class = "rdiffusers_error_file")
  expect_error(new_sd_image(tempdir()), "is a directory", class = "rdiffusers_error_file")
  expect_error(new_sd_image(path, list(1)), class = "rdiffusers_error_input")
  expect_error(new_sd_images(list(1)), class = "rdiffusers_error_input")
})

test_that("sd_images subset, combine and print one line per image", {
  dir <- withr::local_tempdir()
  make <- function(i, seed) {
    path <- file.path(dir, paste0("img", i, ".png"))
    png::writePNG(array(i / 10, c(8, 8, 3)), path)
    new_sd_image(path, list(prompt = paste("prompt", i), seed = seed, width = 8L,
                            height = 8L, model = "tiny"))
  }
  a <- make(1, 1)
  b <- make(2, "18446744073709551615")
  c3 <- make(3, 3)
  imgs <- c(a, b)
  expect_s3_class(imgs, "sd_images")
  expect_length(imgs, 2)
  expect_identical(imgs[[2]], b)
  sub <- imgs[2]
  expect_s3_class(sub, "sd_images")
  expect_length(sub, 1)
  all3 <- c(imgs, c3)
  expect_length(all3, 3)
  expect_identical(all3[[3]], c3)
  lines <- format(all3)
  expect_length(lines, 4)
  expect_match(lines[1], "3 images")
  expect_match(lines[3], "seed 18446744073709551615", fixed = TRUE)
  expect_error(c(a, 1), class = "rdiffusers_error_input")
  expect_identical(unique(c(a, b, a)), imgs)

  # Out of range or NA subsets and bad assignments are input errors.
  expect_snapshot(imgs[3], error = TRUE)
  expect_error(imgs[c(1, NA)], class = "rdiffusers_error_input")
  expect_identical(imgs[], imgs)
  expect_identical(imgs[-1][[1]], b)
  imgs2 <- imgs
  imgs2[[2]] <- c3
  expect_identical(imgs2[[2]], c3)
  imgs2[1] <- c3
  expect_identical(imgs2[[1]], c3)
  expect_error(imgs2[[2]] <- "oops", class = "rdiffusers_error_input")
  expect_error(imgs2$foo <- 1, class = "rdiffusers_error_input")
  for (i in list(3, 0, -1, "a", 1.5, NA, c(1, 2))) {
    expect_error(imgs[[i]], "give a number from 1 to 2", class = "rdiffusers_error_input")
  }
  expect_error(imgs$path, "imgs\\[\\[1\\]\\]\\$path", class = "rdiffusers_error_input")
  expect_s3_class(imgs2, "sd_images")
  expect_length(format(imgs2), 3)

  # A prompt that is NA or not one string prints as "?".
  odd <- a
  odd$meta$prompt <- NA_character_
  expect_match(format(odd), '"?"', fixed = TRUE)
  odd$meta$prompt <- c("x", "y")
  expect_match(format(odd), '"?"', fixed = TRUE)
  # A seed that is not one value, an NA seed: "?", one line each.
  odd$meta$seed <- c(1, 2)
  expect_match(format(odd), "seed ?", fixed = TRUE)
  odd$meta$seed <- NA
  expect_match(format(c(odd, odd))[2], "seed ?", fixed = TRUE)
  # Long prompts are cut by display width (CJK characters take two columns).
  odd$meta$prompt <- strrep("\u6c34", 100)
  withr::local_options(width = 80)
  expect_lte(nchar(sd_image_line(odd), type = "width"),
             80 + nchar(basename(odd$path)))
})

test_that("long prompts are truncated in print", {
  path <- withr::local_tempfile(fileext = ".png")
  png::writePNG(array(0.5, c(8, 8, 3)), path)
  img <- new_sd_image(path, list(prompt = strrep("word ", 100), seed = 1, model = "tiny"))
  expect_lt(nchar(format(img)), 200)
  expect_match(format(img), "...", fixed = TRUE)
  # Cut to the console's width less 50 columns for the rest of the line.
  withr::local_options(width = 80)
  shown <- sub('^<sd_image> "(.*)" \\|.*$', "\\1", format(img))
  expect_identical(shown, paste0(substr(strrep("word ", 100), 1, 27), "..."))
  header <- format(new_sd_images(list(img)))[[1]]
  expect_identical(header, "<sd_images> 1 image")
})

test_that("as.data.frame() lists images one per row, with typed columns", {
  dir <- withr::local_tempdir()
  make <- function(i, meta) {
    path <- file.path(dir, paste0("img", i, ".png"))
    png::writePNG(array(i / 10, c(8, 8, 3)), path)
    new_sd_image(path, meta)
  }
  a <- make(1, list(task = "txt2img", prompt = "a cat", negative_prompt = NULL, seed = 42,
                    steps = 20L, guidance_scale = 7.5, width = 8L, height = 8L,
                    scheduler = "DDIMScheduler", model = "tiny"))
  b <- make(2, list(task = "img2img", prompt = "a dog", seed = 43, steps = 10L,
                    strength = 0.5, model = "tiny"))
  df <- as.data.frame(c(a, b))
  expect_equal(nrow(df), 2)
  expect_identical(df$path, c(a$path, b$path))
  expect_identical(df$seed, c(42, 43))
  expect_identical(df$steps, c(20L, 10L))
  expect_identical(df$strength, c(NA, 0.5))
  expect_identical(df$negative_prompt, c(NA_character_, NA_character_))
  expect_identical(df$width, c(8L, NA))
  expect_identical(df$task, c("txt2img", "img2img"))
  # A seed above 2^53 is kept exactly: the column becomes character.
  big <- make(3, list(prompt = "x", seed = "18446744073709551615"))
  expect_identical(as.data.frame(c(a, big))$seed, c("42", "18446744073709551615"))
  expect_identical(as.data.frame(a), df[1, ])
})
