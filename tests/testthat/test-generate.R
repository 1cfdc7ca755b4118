test_that("bad arguments are classed input errors that name the argument", {
  bad <- list(
    list(prompt = ""),
    list(prompt = "   "),
    list(prompt = NA_character_),
    list(prompt = character()),
    list(prompt = 1),
    list(prompt = "a", steps = 2.5),
    list(prompt = "a", steps = NA),
    list(prompt = "a", steps = -1),
    list(prompt = "a", steps = 0),
    list(prompt = "a", width = 65),
    list(prompt = "a", width = 20000),
    list(prompt = "a", steps = 3e9),
    list(prompt = "a", output_dir = ""),
    list(prompt = "a", height = 100),
    list(prompt = "a", width = NA_real_),
    list(prompt = "a", guidance_scale = NA),
    list(prompt = "a", guidance_scale = Inf),
    list(prompt = "a", guidance_scale = "7"),
    list(prompt = "a", n = 0),
    list(prompt = "a", n = 1.5),
    list(prompt = "a", seed = -1),
    list(prompt = "a", seed = 1.5),
    list(prompt = "a", seed = NA),
    list(prompt = "a", seed = 2^53 + 2),
    list(prompt = "a", seed = "12a"),
    list(prompt = "a", seed = "-3"),
    list(prompt = "a", seed = "18446744073709551616"),
    list(prompt = "a", seed = c(1, 2)),
    list(prompt = "a", seed = TRUE),
    list(prompt = "a", negative_prompt = NA_character_),
    list(prompt = "a", scheduler = 3),
    list(prompt = "a", model = ""),
    list(prompt = "a", stepz = 3),
    list(prompt = "a", device = "gpu"),
    list(prompt = "a", dtype = "float64"),
    list(prompt = "a", clip_skip = -1),
    list(prompt = "a", progress = "loud")
  )
  for (args in bad) {
    # The message names the argument that is wrong: the last one given.
    arg <- paste0("`", names(args)[length(args)], "`")
    expect_error(do.call(sd_generate, args), arg, fixed = TRUE, class = "rdiffusers_error_input")
  }
})

test_that("validation messages name the argument and the fix", {
  expect_snapshot(error = TRUE, {
    sd_generate("a cat", steps = 2.5)
    sd_generate("a cat", width = 100)
    sd_generate("", steps = 2)
    sd_generate("a cat", seed = "1e5")
    sd_generate("a cat", seed = 2^60)
    sd_generate("a cat", seed = -1)
    sd_generate("a cat", seed = NA)
    sd_generate("a cat", n = 0)
    sd_generate("a cat", guidance_scale = NA)
    sd_generate("a cat", guidance_scale = Inf)
    sd_generate("a cat", stepz = 3)
  })
})

test_that("prompts that are not valid UTF-8 are refused; Latin-1 ones are converted", {
  raw_latin1 <- rawToChar(as.raw(c(0x63, 0x61, 0x66, 0xe9)))   # "caf\xe9", unmarked
  expect_error(sd_generate(c("ok", raw_latin1)), "`prompt` is not valid UTF-8 text \\(element 2\\)",
               class = "rdiffusers_error_input")
  expect_error(sd_generate("a", negative_prompt = raw_latin1), "`negative_prompt` is not valid UTF-8",
               class = "rdiffusers_error_input")
  marked <- raw_latin1
  Encoding(marked) <- "latin1"
  expect_silent(check_utf8(marked))
  expect_silent(check_utf8("\u6c34\u58a8"))
})

test_that("prompts too long for the image's metadata are refused before generating", {
  # Each image stores its prompts in its metadata (at most 8 MiB): a prompt
  # of several MiB used to fail after the image was made.
  long <- strrep("a", prompt_max_bytes + 1)
  expect_error(sd_generate(c("ok", long)), "`prompt` is too long \\(element 2\\)",
               class = "rdiffusers_error_input")
  expect_error(sd_generate("a", negative_prompt = long), "`negative_prompt` is too long",
               class = "rdiffusers_error_input")
  # The limit is on the size in the metadata's JSON, where a character
  # outside ASCII, or a control character, is a 6-byte escape.
  for (ch in c("\u00e9", "\001")) {
    expect_error(check_prompt(strrep(ch, prompt_max_bytes %/% 6 + 1)), "at most 1 MiB",
                 class = "rdiffusers_error_input")
  }
  expect_silent(check_prompt(strrep("\u00e9", prompt_max_bytes %/% 6)))
  expect_silent(check_prompt(strrep("a", prompt_max_bytes - 2)))   # and its quotes
  expect_equal(json_size("a\"\u00e9\U0001f600\n"), nchar(json_string("a\"\u00e9\U0001f600\n")))
})

test_that("seeds are checked and expanded as exact decimal strings", {
  expect_equal(check_seed(2^53, 1), "9007199254740992")
  expect_equal(check_seed("18446744073709551615", 2), rep("18446744073709551615", 2))
  expect_equal(check_seed("007", 1), "7")
  expect_equal(check_seed(c(1, 2), 2), c("1", "2"))
  expect_equal(check_seed(round(-0.2), 1), "0")   # -0, from arithmetic
  expect_equal(seed_add("9007199254740992", 1L), "9007199254740993")
  expect_equal(seed_add("18446744073709551614", 1L), "18446744073709551615")
  expect_equal(seed_add("999", 1L), "1000")
  expect_true(is.na(seed_add("18446744073709551615", 1L)))
  expect_true(seed_fits_double("9007199254740992"))
  expect_false(seed_fits_double("9007199254740993"))
  # The batch's last seed must exist too, before Python is asked anything.
  local_ns_mock(check_model = function(...) invisible(),
                presets_list = function(...) list(),
                py_call = function(...) stop("Python was reached"))
  expect_error(sd_generate("a", seed = "18446744073709551615", n = 2),
               "overflows the largest seed", class = "rdiffusers_error_input")
})

test_that("bit64 seeds (data.table::fread()'s big integers) keep their digits", {
  skip_if_not_installed_ci("bit64")
  expect_equal(check_seed(bit64::as.integer64(42), 1), "42")
  expect_equal(check_seed(bit64::as.integer64("9223372036854775807"), 1), "9223372036854775807")
  expect_equal(check_seed(bit64::as.integer64(c(7, 8)), 2), c("7", "8"))
  expect_error(check_seed(bit64::as.integer64(-1), 1), "\"-1\"", class = "rdiffusers_error_input")
  expect_error(check_seed(bit64::as.integer64(NA), 1), class = "rdiffusers_error_input")
  expect_error(sd_sweep("a", seed = bit64::as.integer64(c(7, 7))), "repeated",
               class = "rdiffusers_error_input")
  # Distinct ones pass the seed checks (the error is then about `n`, checked
  # after them); read as raw bits they would be 3.5e-323, not a seed.
  expect_error(sd_sweep("a", seed = bit64::as.integer64(c(7, 8)), n = 2), "`n` is not used",
               class = "rdiffusers_error_input")
})

test_that("seed = NULL follows R's RNG", {
  withr::local_preserve_seed()
  set.seed(42)
  a <- check_seed(NULL, 2)
  set.seed(42)
  b <- check_seed(NULL, 2)
  expect_identical(a, b)
  expect_match(a, "^[0-9]+$")
  expect_false(identical(a[1], a[2]))
  expect_true(all(as.numeric(a) < 2^53))
})

test_that("an error writing an image keeps its class through Python", {
  skip_if_no_python()
  # Python calls R back with each finished image; an R error there came back
  # as "Python error in generate()" with reticulate < 1.36.
  local_ns_mock(write_final_png = function(...) {
    sd_abort("The disk went away.", class = "rdiffusers_error_file")
  })
  out <- withr::local_tempdir()
  expect_error(sd_generate("a fox", width = 64, height = 64, steps = 1, seed = 1,
                           output_dir = out, progress = FALSE),
               "The disk went away", class = "rdiffusers_error_file")
})

test_that("a refused call leaves no output directory it created", {
  skip_if_no_python()
  root <- withr::local_tempdir()
  out <- file.path(root, "new", "images")
  expect_error(sd_generate("a fox", width = 64, height = 64, steps = 5000, seed = 1,
                           output_dir = out, progress = FALSE),
               class = "rdiffusers_error_input")
  expect_identical(dir(root, all.files = TRUE, no.. = TRUE), character())
  # One that existed stays, with what it held.
  dir.create(out, recursive = TRUE)
  writeLines("mine", file.path(out, "notes.txt"))
  expect_error(sd_generate("a fox", width = 64, height = 64, steps = 5000, seed = 1,
                           output_dir = out, progress = FALSE),
               class = "rdiffusers_error_input")
  expect_identical(dir(out, all.files = TRUE, no.. = TRUE), "notes.txt")
  img <- sd_generate("a fox", width = 64, height = 64, steps = 1, seed = 1,
                     output_dir = file.path(root, "more"), progress = FALSE)
  expect_true(file.exists(img$path))
  # Only that directory: unlink() would read "draft [2]" as a wildcard that
  # matches the user's "draft 2", and "run*" their "runA".
  for (mine in c("draft 2", "runA")) {
    dir.create(file.path(root, mine))
    writeLines("precious", file.path(root, mine, "notes.txt"))
  }
  for (made in c("draft [2]", "run*")) {
    expect_error(sd_generate("a fox", width = 64, height = 64, steps = 5000, seed = 1,
                             output_dir = file.path(root, made), progress = FALSE),
                 class = "rdiffusers_error_input")
  }
  expect_setequal(dir(root), c("new", "more", "draft 2", "runA"))
  expect_identical(readLines(file.path(root, "runA", "notes.txt")), "precious")
})

test_that("final file names never overwrite", {
  dir <- withr::local_tempdir()
  p1 <- unique_path(dir, "sd-x-1")
  expect_equal(basename(p1), "sd-x-1.png")
  file.create(p1)
  p2 <- unique_path(dir, "sd-x-1")
  expect_equal(basename(p2), "sd-x-1-2.png")
  # A link whose target is gone takes its name too (writing there looped).
  skip_if_not(file.symlink(file.path(dir, "gone.png"), file.path(dir, "sd-y.png")))
  tmp <- file.path(dir, "python-out.png")
  file.copy(local_png(), tmp)
  final <- write_final_png(tmp, dir, "sd-y", list(seed = 1))
  expect_identical(basename(final), "sd-y-2.png")
  expect_identical(Sys.readlink(file.path(dir, "sd-y.png")), file.path(dir, "gone.png"))
})

test_that("a final name taken by another process moves on to the next one", {
  dir <- withr::local_tempdir()
  src <- local_png()
  tmp <- file.path(dir, "python-out.png")
  file.copy(src, tmp)
  theirs <- file.path(dir, "sd-x-1.png")
  # The other process creates the name between unique_path() and the write.
  real_place <- place_new_file
  local_ns_mock(place_new_file = function(tmp, path) {
    if (!file.exists(theirs)) writeBin(as.raw(7), theirs)
    real_place(tmp, path)
  })
  final <- write_final_png(tmp, dir, "sd-x-1", list(prompt = "mine"))
  expect_equal(basename(final), "sd-x-1-2.png")
  expect_identical(readBin(theirs, "raw", 10), as.raw(7))
  expect_identical(png_read_meta(final)$prompt, "mine")
  expect_false(file.exists(tmp))
})

# Python-backed --------------------------------------------------------------

test_that("same seed gives identical pixels, another seed different ones", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = file.path(tempdir(), "rdiffusers-test-out"))
  gen <- function(...) sd_generate(..., width = 64, height = 64, steps = 2, progress = FALSE)
  a <- gen("a red fox", seed = 1)
  b <- gen("a red fox", seed = 1)
  c <- gen("a red fox", seed = 2)
  expect_s3_class(a, "sd_image")
  expect_false(identical(a$path, b$path))
  expect_identical(png::readPNG(a$path), png::readPNG(b$path))
  expect_identical(a$meta$pixel_sha256, b$meta$pixel_sha256)
  expect_false(identical(png::readPNG(a$path), png::readPNG(c$path)))
  expect_false(identical(a$meta$pixel_sha256, c$meta$pixel_sha256))
  expect_identical(a$meta$seed, 1)
  expect_identical(a$meta$steps, 2L)
  expect_identical(a$meta$width, 64L)
  expect_identical(a$meta$versions$R, as.character(getRversion()))
  expect_match(basename(a$path), "^sd-[0-9]{8}-[0-9]{6}-1(-[0-9]+)?\\.png$")
  # no temporary files left behind
  expect_length(list.files(dirname(a$path), pattern = "^\\.rdiffusers-", all.files = TRUE), 0)
})

test_that("set.seed() before seed = NULL reproduces the image", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = file.path(tempdir(), "rdiffusers-test-out"))
  gen <- function(...) sd_generate(..., width = 64, height = 64, steps = 2, progress = FALSE)
  withr::local_preserve_seed()
  set.seed(7)
  a <- gen("a lighthouse")
  set.seed(7)
  b <- gen("a lighthouse")
  expect_identical(a$meta$seed, b$meta$seed)
  expect_identical(png::readPNG(a$path), png::readPNG(b$path))
})

test_that("seeds at 2^53 and 2^64 - 1 survive exactly", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = file.path(tempdir(), "rdiffusers-test-out"))
  gen <- function(...) sd_generate(..., width = 64, height = 64, steps = 2, progress = FALSE)
  a <- gen("a boat", seed = 2^53)
  expect_identical(a$meta$seed, 2^53)
  b <- gen("a boat", seed = "18446744073709551615")
  expect_identical(b$meta$seed, "18446744073709551615")
  expect_false(identical(a$meta$pixel_sha256, b$meta$pixel_sha256))
  expect_error(gen("a boat", seed = "18446744073709551615", n = 2),
               class = "rdiffusers_error_input")
})

test_that("a batch gives seeds s, s + 1 per prompt and one image per seed", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = file.path(tempdir(), "rdiffusers-test-out"))
  gen <- function(...) sd_generate(..., width = 64, height = 64, steps = 2, progress = FALSE)
  # Names on the prompts are the user's labels, not prompts.
  imgs <- gen(c(cat = "a cat", dog = "a dog"), negative_prompt = c(x = "blurry", y = "dark"),
              seed = c(10, 20), n = 2)
  expect_s3_class(imgs, "sd_images")
  expect_length(imgs, 4)
  seeds <- vapply(unclass(imgs), function(x) x$meta$seed, double(1))
  expect_equal(seeds, c(10, 11, 20, 21))
  prompts <- vapply(unclass(imgs), function(x) x$meta$prompt, character(1))
  expect_equal(prompts, c("a cat", "a cat", "a dog", "a dog"))
  negatives <- vapply(unclass(imgs), function(x) x$meta$negative_prompt, character(1))
  expect_equal(negatives, c("blurry", "blurry", "dark", "dark"))
  # image 2 of the batch is exactly what seed 11 gives on its own
  single <- gen("a cat", negative_prompt = "blurry", seed = 11)
  expect_identical(png::readPNG(imgs[[2]]$path), png::readPNG(single$path))
})

test_that("unknown model and scheduler are classed errors; the session stays usable", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = file.path(tempdir(), "rdiffusers-test-out"))
  gen <- function(...) sd_generate(..., width = 64, height = 64, steps = 2, progress = FALSE)
  expect_error(gen("a cat", model = "no-such-model"), class = "rdiffusers_error_model")
  expect_error(gen("a cat", scheduler = "Eulr a"), class = "rdiffusers_error_input")
  expect_error(sd_generate("a cat", steps = 1.5), class = "rdiffusers_error_input")
  ok <- gen("a cat", seed = 3)
  expect_true(file.exists(ok$path))
})

test_that("a named scheduler changes the image", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = file.path(tempdir(), "rdiffusers-test-out"))
  gen <- function(...) sd_generate(..., width = 64, height = 64, steps = 2, progress = FALSE)
  a <- gen("a tree", seed = 5)
  b <- gen("a tree", seed = 5, scheduler = "Euler a")
  expect_false(identical(a$meta$pixel_sha256, b$meta$pixel_sha256))
})

test_that("tiny-sdxl and tiny-sd3 generate", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = file.path(tempdir(), "rdiffusers-test-out"))
  gen <- function(...) sd_generate(..., width = 64, height = 64, steps = 2, progress = FALSE)
  for (m in c("tiny-sdxl", "tiny-sd3")) {
    img <- gen("a hill", model = m, seed = 1)
    expect_s3_class(img, "sd_image")
    expect_equal(dim(png::readPNG(img$path))[1:2], c(64, 64))
    expect_equal(img$meta$model, m)
  }
})

test_that("the PNG carries the returned metadata and Python warnings become R warnings", {
  skip_if_no_python()
  withr::local_options(rdiffusers.output_dir = withr::local_tempdir())
  img <- sd_generate("a cat", width = 64, height = 64, steps = 2, seed = 9, progress = FALSE)
  expect_identical(png_read_meta(img$path)[names(img$meta)], img$meta)
  expect_identical(img$meta$versions$rdiffusers, as.character(utils::packageVersion("rdiffusers")))
  expect_match(img$meta$created, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$")
  # a prompt beyond CLIP's 77 tokens is truncated by the model: the user is told
  long <- paste(rep("a very detailed painting of a cat", 20), collapse = ", ")
  expect_warning(
    sd_generate(long, width = 64, height = 64, steps = 2, seed = 9, progress = FALSE),
    class = "rdiffusers_warning"
  )
})

test_that("an interrupt inside the step callback becomes an rdiffusers_interrupt", {
  skip_if_no_python()
  py_helper()
  main <- reticulate::py_run_string(
    "def rd_steps(cb):\n    for i in range(3):\n        cb(0, i + 1, 3)\n    return 'done'",
    convert = FALSE
  )
  steps <- function(callback) reticulate::py_to_r(main$rd_steps(callback))
  seen <- 0L
  p <- list(callback = function(image_index, step, total) seen <<- seen + 1L)
  expect_equal(with_interrupts(p, steps), "done")
  expect_equal(seen, 3L)

  p <- new.env()
  p$callback <- function(image_index, step, total) if (step == 2) rlang::interrupt()
  got <- tryCatch(with_interrupts(p, steps), rdiffusers_interrupt = identity)
  expect_s3_class(got, "rdiffusers_interrupt")
  expect_true(p$interrupted)
  # an ordinary error is passed on, not mistaken for an interrupt
  p$callback <- NULL
  expect_error(with_interrupts(p, function(cb) stop("boom")), "boom")
})

test_that("an output_dir that cannot hold the images fails before generating", {
  skip_if_no_python()
  real_py_call <- py_call
  local_ns_mock(py_call = function(fun_name, ...) {
    if (identical(fun_name, "generate")) stop("generation ran")
    real_py_call(fun_name, ...)
  })
  f <- withr::local_tempfile()
  writeLines("not a folder", f)
  expect_error(sd_generate("a cat", width = 64, height = 64, steps = 2, output_dir = f),
               "is a file", class = "rdiffusers_error_file")
  expect_identical(readLines(f), "not a folder")
  # Not writable, even by root: refused up front, not after an image is made.
  local_ns_mock(dir_writable = function(dir) FALSE)
  expect_error(sd_generate("a cat", width = 64, height = 64, steps = 2,
                           output_dir = withr::local_tempdir()),
               "Cannot write files", class = "rdiffusers_error_file")
  expect_error(sd_sweep("a cat", seed = 1:2, model = "tiny", output_dir = withr::local_tempdir()),
               "Cannot write files", class = "rdiffusers_error_file")
})

test_that("images finished before an interrupt are saved and carried by the condition", {
  skip_if_no_python()
  out <- withr::local_tempdir()
  real_start <- progress_start
  local_ns_mock(progress_start = function(...) {
    p <- real_start(...)
    # Ctrl+C during the third image's first step.
    p$callback <- function(image_index, step, total) {
      if (image_index == 3 && step == 1) rlang::interrupt()
    }
    p
  })
  expect_message(
    got <- tryCatch(
      sd_generate("a cat", width = 64, height = 64, steps = 2, seed = 1, n = 4,
                  output_dir = out, progress = FALSE),
      rdiffusers_interrupt = identity
    ),
    "2 of 4 images finished", class = "rdiffusers_message"
  )
  expect_s3_class(got, "rdiffusers_interrupt")
  expect_s3_class(got$images, "sd_images")
  expect_equal(vapply(got$images, function(img) img$meta$seed, 0), c(1, 2))
  # The folder holds those two, final, and nothing else (no temporary file).
  expect_setequal(normalizePath(list.files(out, all.files = TRUE, no.. = TRUE, full.names = TRUE)),
                  normalizePath(vapply(got$images, function(img) img$path, "")))
  # Each is whole: the same pixels and metadata as that seed made alone.
  alone <- sd_generate("a cat", width = 64, height = 64, steps = 2, seed = 2,
                       output_dir = withr::local_tempdir(), progress = FALSE)
  expect_identical(got$images[[2]]$meta$pixel_sha256, alone$meta$pixel_sha256)
  expect_identical(png_read_meta(got$images[[2]]$path)$pixel_sha256, alone$meta$pixel_sha256)
  # A warning about the images kept (here: a prompt too long for CLIP) is
  # still given after the stop.
  long <- paste(rep("a very detailed painting of a cat", 20), collapse = ", ")
  expect_warning(
    expect_message(
      tryCatch(sd_generate(long, width = 64, height = 64, steps = 2, seed = 1, n = 3,
                           output_dir = withr::local_tempdir(), progress = FALSE),
               rdiffusers_interrupt = identity),
      "2 of 3 images finished", class = "rdiffusers_message"
    ),
    "reads only the first 77", class = "rdiffusers_warning"
  )
})

test_that("n is capped, and a preset's steps always run one step at any strength", {
  local({
    # Refused before Python is reached (not after 20000 images).
    local_ns_mock(py_call = function(...) stop("Python was reached"))
    expect_error(sd_generate("a cat", n = 1e9), class = "rdiffusers_error_input")
    expect_error(sd_generate(rep("a cat", 200), n = 100), "at most 10000",
                 class = "rdiffusers_error_input")
  })
  skip_if_no_python()
  # ceiling(1 / strength) * strength is just below 1 for 1/161: diffusers
  # would run int(161 * 0.0062...) = 0 steps.
  src <- withr::local_tempfile(fileext = ".png")
  png::writePNG(array(0.5, c(64, 64, 3)), src)
  local_ns_mock(presets_list = function(...) list(tiny = list(steps = 1)))
  img <- sd_img2img(src, "a cat", model = "tiny", strength = 1 / 161, seed = 1,
                    output_dir = withr::local_tempdir(), progress = FALSE)
  expect_gte(floor(img$meta$steps * img$meta$strength), 1)
  # A strength so small that no step count would do is an input error
  # (ceiling(1 / strength) overflowed R's integers before).
  expect_error(sd_img2img(src, "a cat", model = "tiny", strength = 1e-10, progress = FALSE),
               "would need 10,000,000,000 steps", class = "rdiffusers_error_input")
  # Up to 1000 steps are raised to; one more is refused.
  expect_error(sd_img2img(src, "a cat", model = "tiny", strength = 1 / 1001, progress = FALSE),
               "would need 1,001 steps", class = "rdiffusers_error_input")
})

test_that("RDIFFUSERS_TORCH_THREADS set after Python started is used by the next call", {
  skip_if_no_python()
  withr::local_envvar(RDIFFUSERS_TORCH_THREADS = "1")
  gen1 <- function() {
    sd_generate("a fox", width = 64, height = 64, steps = 1, seed = 1,
                output_dir = withr::local_tempdir(.local_envir = parent.frame()), progress = FALSE)
  }
  expect_equal(gen1()$meta$torch_threads, 1)
  Sys.setenv(RDIFFUSERS_TORCH_THREADS = "2")
  expect_equal(gen1()$meta$torch_threads, 2)
  # Counts torch cannot take are input errors (100000 crashed R inside
  # OpenMP; 0 and -1 were ignored), and the session goes on.
  for (bad in c("0", "-1", "100000", "99999999999", "two", "1.5")) {
    Sys.setenv(RDIFFUSERS_TORCH_THREADS = bad)
    expect_error(gen1(), "from 1 to 1024", class = "rdiffusers_error_input")
  }
  Sys.setenv(RDIFFUSERS_TORCH_THREADS = "1")
  expect_equal(gen1()$meta$torch_threads, 1)
})
