# Helpers for the metadata tests: fixture paths, small PNGs, hand-built
# chunks, and an independent R port of A1111's infotext parser.

fixture <- function(...) {
  testthat::test_path("fixtures", ...)
}

# A small RGB PNG with random pixels (pure R, no Python).
local_png <- function(width = 8, height = 8, env = parent.frame()) {
  path <- withr::local_tempfile(fileext = ".png", .local_envir = env)
  png::writePNG(array(stats::runif(width * height * 3), c(height, width, 3)), path)
  path
}

# Bytes of a PNG made of the signature and the given raw chunks.
png_bytes <- function(...) {
  c(as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)), unlist(list(...)))
}

# The chunks of a valid 1x1 grey PNG: IHDR, IDAT, IEND.
tiny_png_chunks <- function() {
  ihdr <- rdiffusers:::png_chunk("IHDR", as.raw(c(0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0)))
  idat <- rdiffusers:::png_chunk("IDAT", memCompress(as.raw(c(0, 128)), "gzip"))
  iend <- rdiffusers:::png_chunk("IEND", raw(0))
  list(ihdr = ihdr, idat = idat, iend = iend)
}

write_bytes <- function(bytes, env = parent.frame()) {
  path <- withr::local_tempfile(fileext = ".png", .local_envir = env)
  writeBin(bytes, path)
  path
}

# Raw bytes of every chunk of the given type(s), concatenated.
chunk_bytes <- function(path, types = "IDAT") {
  bytes <- readBin(path, "raw", file.size(path))
  pos <- 8
  out <- raw(0)
  while (pos + 12 <= length(bytes)) {
    len <- sum(as.double(as.integer(bytes[pos + 1:4])) * 256^(3:0))
    type <- rawToChar(bytes[pos + 5:8])
    if (type %in% types) out <- c(out, bytes[(pos + 1):(pos + 12 + len)])
    pos <- pos + 12 + len
  }
  out
}

chunk_types <- function(path) {
  bytes <- readBin(path, "raw", file.size(path))
  pos <- 8
  out <- character()
  while (pos + 12 <= length(bytes)) {
    len <- sum(as.double(as.integer(bytes[pos + 1:4])) * 256^(3:0))
    out <- c(out, rawToChar(bytes[pos + 5:8]))
    pos <- pos + 12 + len
  }
  out
}

# An independent port of AUTOMATIC1111's parse_generation_parameters()
# (modules/infotext_utils.py), written from reading its source: split off the
# last line when it holds >= 3 `Key: value` matches of re_param, strip each
# prompt line, switch to the negative prompt at "Negative prompt:", unquote
# JSON-quoted values, split `WxH` sizes into Key-1/Key-2, default Clip skip.
# Returns a named list of strings, like the Python dict.
a1111_reference_parse <- function(x) {
  re_param <- '(*UCP)\\s*(\\w[\\w \\-/]+):\\s*("(?:\\\\.|[^\\\\"])+"|[^,]*)(?:,|$)'
  findall <- function(s) {
    m <- regmatches(s, gregexec(re_param, s, perl = TRUE))[[1]]
    if (length(m) == 0) return(list())
    lapply(seq_len(ncol(m)), function(i) c(m[2, i], m[3, i]))
  }
  res <- list()
  lines <- strsplit(trimws(x), "\n", fixed = TRUE)[[1]]
  lastline <- lines[length(lines)]
  lines <- lines[-length(lines)]
  if (length(findall(lastline)) < 3) {
    lines <- c(lines, lastline)
    lastline <- ""
  }
  prompt <- ""
  negative_prompt <- ""
  done_with_prompt <- FALSE
  for (line in lines) {
    line <- trimws(line)
    if (startsWith(line, "Negative prompt:")) {
      done_with_prompt <- TRUE
      line <- trimws(substring(line, 17))
    }
    if (done_with_prompt) {
      negative_prompt <- paste0(negative_prompt, if (negative_prompt == "") "" else "\n", line)
    } else {
      prompt <- paste0(prompt, if (prompt == "") "" else "\n", line)
    }
  }
  res[["Prompt"]] <- prompt
  res[["Negative prompt"]] <- negative_prompt
  for (kv in findall(lastline)) {
    k <- kv[1]
    v <- kv[2]
    if (startsWith(v, '"') && endsWith(v, '"')) {
      v <- tryCatch(jsonlite::parse_json(v), error = function(e) v)
    }
    m <- regmatches(v, regexec("^(\\d+)x(\\d+)$", v))[[1]]
    if (length(m) == 3) {
      res[[paste0(k, "-1")]] <- m[2]
      res[[paste0(k, "-2")]] <- m[3]
    } else {
      res[[k]] <- v
    }
  }
  if (is.null(res[["Clip skip"]])) res[["Clip skip"]] <- "1"
  res
}

# A metadata list shaped like the one sd_generate() writes.
example_meta <- function() {
  list(
    task = "txt2img",
    prompt = "a watercolour of 3 cats on a sofa, by Georgia O\u2019Keeffe",
    negative_prompt = "blurry, low quality",
    prompt_3 = NULL,
    seed = 4294967297,
    steps = 2L,
    width = 64L,
    height = 64L,
    guidance_scale = 7.5,
    strength = NULL,
    clip_skip = 1L,
    model = "tiny",
    model_id = "tiny",
    model_source = "tiny",
    model_revision = "sha256:0123abcd",
    family = "sd15",
    pipeline_class = "StableDiffusionPipeline",
    scheduler = "DDIMScheduler",
    scheduler_config = list(
      beta_start = 0.00085, beta_end = 0.012, beta_schedule = "scaled_linear",
      clip_sample = FALSE, set_alpha_to_one = FALSE, steps_offset = 1L,
      trained_betas = NULL, num_train_timesteps = 1000L
    ),
    sampler = "DDIM",
    schedule_type = "Automatic",
    dtype = "float32", device = "cpu", generator_device = "cpu",
    optimize = "none", torch_threads = 1L,
    init_image_sha256 = NULL, mask_sha256 = NULL, keep_unmasked = NULL,
    loras = list(list(name = "watercolour", path = "/loras/watercolour.safetensors",
                      sha256 = strrep("ab", 32), scale = 0.8,
                      a1111_hash = strrep("cd", 6))),
    versions = list(python = "3.11.2", torch = "2.13.0", diffusers = "0.42.1",
                    R = "4.2.2", rdiffusers = "0.1.0"),
    pixel_sha256 = strrep("0f", 32),
    created = "2025-01-01T00:00:00Z"
  )
}
