test_that("crc32_raw() matches the CRC-32 reference values", {
  expect_equal(crc32_raw(charToRaw("123456789")), 0xCBF43926)
  expect_equal(crc32_raw(charToRaw("IEND")), 0xAE426082)
  expect_equal(crc32_raw(raw(0)), 0)
})

test_that("PNG keywords follow the PNG rules", {
  expect_true(png_keyword_ok("parameters"))
  expect_true(png_keyword_ok("Negative prompt"))
  expect_true(png_keyword_ok("caf\u00e9"))
  expect_true(png_keyword_ok(strrep("k", 79)))
  expect_false(png_keyword_ok(""))
  expect_false(png_keyword_ok(strrep("k", 80)))
  expect_false(png_keyword_ok(" lead"))
  expect_false(png_keyword_ok("trail "))
  expect_false(png_keyword_ok("dou  ble"))
  expect_false(png_keyword_ok("\u6c34\u58a8"))
  expect_false(png_keyword_ok("tab\there"))
  expect_false(png_keyword_ok(NA_character_))
})

test_that("zlib_inflate() inflates valid streams and refuses bombs and garbage", {
  text <- charToRaw(strrep("hello ", 100))
  expect_identical(zlib_inflate(memCompress(text, "gzip")), text)
  bomb <- memCompress(raw(64 * 1024^2), "gzip")
  expect_null(zlib_inflate(bomb, limit = 1024^2))
  expect_null(zlib_inflate(as.raw(c(0x78, 0x9c, 1:60))))
  expect_null(zlib_inflate(as.raw(1:10)))
})

test_that("text after the image data is read", {
  meta <- png_read_meta(fixture("other-tools", "bad_images", "text_after_idat.png"))
  expect_identical(meta$prompt, "photo of a duck")
  expect_identical(meta$steps, 15L)
})

test_that("a truncated PNG gives a warning and what could be read", {
  src <- local_png()
  out <- withr::local_tempfile(fileext = ".png")
  png_write_meta(src, out, meta = list(prompt = "kept", steps = 3L))
  bytes <- readBin(out, "raw", file.size(out))
  cut <- write_bytes(bytes[seq_len(length(bytes) - 20)])
  expect_warning(meta <- png_read_meta(cut), class = "rdiffusers_warning_metadata")
  expect_identical(meta$prompt, "kept")
  expect_identical(meta$steps, 3L)
  # Cut inside the first text chunk: nothing readable, still no error.
  cut <- write_bytes(bytes[1:40])
  expect_warning(meta <- png_read_meta(cut), class = "rdiffusers_warning_metadata")
  expect_length(meta, 0)
})

test_that("a text chunk with a bad CRC is skipped with a warning", {
  ch <- tiny_png_chunks()
  good <- rdiffusers:::png_text_chunk("seed", "42")
  bad <- rdiffusers:::png_text_chunk("steps", "20")
  bad[length(bad)] <- xor(bad[length(bad)], as.raw(1))
  path <- write_bytes(png_bytes(ch$ihdr, good, bad, ch$idat, ch$iend))
  expect_warning(meta <- png_read_meta(path), "bad CRC", class = "rdiffusers_warning_metadata")
  expect_identical(as.list(meta), list(seed = 42))
})

test_that("a compressed bomb in a zTXt chunk is refused, inflating no more than the limit", {
  ch <- tiny_png_chunks()
  # 256 MiB of zeros compress to ~250 KiB.
  bomb <- memCompress(raw(256 * 1024^2), "gzip")
  ztxt <- rdiffusers:::png_chunk("zTXt", c(charToRaw("Comment"), as.raw(c(0, 0)), bomb))
  path <- write_bytes(png_bytes(ch$ihdr, ztxt, ch$idat, ch$iend))
  expect_warning(meta <- png_read_meta(path), class = "rdiffusers_warning_metadata")
  expect_length(meta, 0)
  expect_identical(attr(meta, "tool"), "none")
})

test_that("a chunk claiming a huge length is not allocated", {
  ch <- tiny_png_chunks()
  huge <- c(as.raw(c(0x7f, 0xff, 0xff, 0xff)), charToRaw("tEXt"), charToRaw("seed"), as.raw(0), charToRaw("42"))
  path <- write_bytes(png_bytes(ch$ihdr, huge))
  expect_warning(meta <- png_read_meta(path), "truncated", class = "rdiffusers_warning_metadata")
  expect_length(meta, 0)
  over <- c(as.raw(c(0xff, 0xff, 0xff, 0xff)), charToRaw("tEXt"), raw(20))
  path <- write_bytes(png_bytes(ch$ihdr, over))
  expect_warning(png_read_meta(path), "corrupt", class = "rdiffusers_warning_metadata")
})

test_that("an iTXt chunk that is not valid UTF-8 is skipped with a warning", {
  ch <- tiny_png_chunks()
  bad <- rdiffusers:::png_chunk("iTXt", c(charToRaw("prompt"), raw(5), as.raw(c(0x61, 0xff, 0xfe))))
  good <- rdiffusers:::png_text_chunk("steps", "20")
  path <- write_bytes(png_bytes(ch$ihdr, bad, good, ch$idat, ch$iend))
  expect_warning(meta <- png_read_meta(path), class = "rdiffusers_warning_metadata")
  expect_identical(as.list(meta), list(steps = 20L))
})

test_that("adler32() matches the reference values", {
  expect_equal(adler32(charToRaw("Wikipedia")), 0x11E60398)
  expect_equal(adler32(raw(0)), 1)
  x <- as.raw(rep(255, 70000))
  expect_equal(adler32(x), unsigned_be(tail(memCompress(x, "gzip"), 4)))
})

test_that("a cut or corrupt compressed text chunk is skipped with a warning, never read in part", {
  ch <- tiny_png_chunks()
  text <- memCompress(charToRaw(strrep("a lighthouse at dawn, ", 200)), "gzip")
  cut <- rdiffusers:::png_chunk("zTXt", c(charToRaw("Comment"), as.raw(c(0, 0)),
                                          text[seq_len(length(text) - 6)]))
  # Valid zlib header and an empty deflate block, then garbage for a trailer.
  garbage <- rdiffusers:::png_chunk("iTXt", c(charToRaw("prompt"), as.raw(c(0, 1, 0, 0, 0)),
                                              as.raw(c(0x78, 0x9c, 0x03, 0x00, 1:10))))
  good <- rdiffusers:::png_text_chunk("steps", "20")
  path <- write_bytes(png_bytes(ch$ihdr, cut, garbage, good, ch$idat, ch$iend))
  warnings <- testthat::capture_warnings(meta <- png_read_meta(path))
  expect_length(grep("Skipped the (zTXt|iTXt) chunk", warnings), 2)
  expect_identical(as.list(meta), list(steps = 20L))
  whole <- rdiffusers:::png_chunk("zTXt", c(charToRaw("Comment"), as.raw(c(0, 0)), text))
  path <- write_bytes(png_bytes(ch$ihdr, whole, ch$idat, ch$iend))
  expect_identical(png_read_meta(path)$Comment, strrep("a lighthouse at dawn, ", 200))
})

test_that("non-PNG, empty and missing files give classed errors", {
  not_png <- withr::local_tempfile(fileext = ".png")
  writeLines("just some text", not_png)
  expect_error(png_read_meta(not_png), class = "rdiffusers_error_file")
  expect_error(png_read_meta(fixture("other-tools", "bad_images", "empty_file.png")),
               class = "rdiffusers_error_file")
  expect_error(png_read_meta(tempfile()), "does not exist", class = "rdiffusers_error_file")
  expect_error(png_read_meta(tempdir()), "is a directory, not a file",
               class = "rdiffusers_error_file")
  expect_error(png_write_meta(tempdir(), tempfile(fileext = ".png"), meta = list(a = 1)),
               "is a directory", class = "rdiffusers_error_file")
  expect_error(png_write_meta(not_png, tempfile(fileext = ".png"), meta = list(a = 1)),
               class = "rdiffusers_error_file")
})

test_that("images without metadata give an empty result", {
  meta <- png_read_meta(fixture("other-tools", "bad_images", "empty_image.jpg"))
  expect_length(meta, 0)
  meta <- png_read_meta(local_png())
  expect_length(meta, 0)
  expect_identical(attr(meta, "tool"), "none")
})

test_that("NUL bytes where a signature or chunk type is expected give classed results", {
  # Not an image: starts like a TIFF with a NUL inside the first bytes.
  notimg <- write_bytes(as.raw(c(0x49, 0x00, 0x2a, 0x01, rep(0x41, 40))))
  expect_error(png_read_meta(notimg), class = "rdiffusers_error_file")
  # A chunk whose type field holds a NUL: a warning and what was read so far.
  chunks <- tiny_png_chunks()
  bad <- rdiffusers:::png_chunk("tEXt", charToRaw("k\001v"))
  bad[5:8] <- as.raw(c(0x74, 0x00, 0x58, 0x74))
  path <- write_bytes(png_bytes(chunks$ihdr, bad, chunks$idat, chunks$iend))
  expect_warning(res <- png_read_meta(path), class = "rdiffusers_warning_metadata")
  expect_s3_class(res, "sd_meta")
  expect_length(res, 0)
})

test_that("a NovelAI file without its Comment chunk is read, not crashed on", {
  chunks <- tiny_png_chunks()
  text <- function(key, value) {
    rdiffusers:::png_chunk("tEXt", c(charToRaw(key), as.raw(0), charToRaw(value)))
  }
  path <- write_bytes(png_bytes(chunks$ihdr, text("Software", "NovelAI"),
                                text("Source", "NAI Diffusion"), chunks$idat, chunks$iend))
  res <- png_read_meta(path)
  expect_identical(attr(res, "tool"), "novelai")
  expect_identical(res$model, "NAI Diffusion")
  expect_null(res$prompt)
})
