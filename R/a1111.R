# AUTOMATIC1111 "infotext": the `parameters` text that A1111, Forge, SD.Next
# and Civitai read and write:
#
#   <prompt, may span lines>
#   Negative prompt: <negative prompt, may span lines>
#   Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ...
#
# A1111 reads it back (modules/infotext_utils.py, parse_generation_parameters)
# with the pattern below: the last line is the settings line when it holds at
# least three `Key: value` pairs; a value is either up to the next comma or a
# JSON string literal, which is why values containing `,`, `:` or a newline
# are written JSON-quoted.

# What Python's str.strip(), which A1111 uses, takes off: Unicode spaces too
# (an ideographic space after a Japanese prompt).
a1111_space <- "[\\h\\v]"

a1111_param_pattern <- '(*UCP)\\s*(\\w[\\w \\-/]+):\\s*("(?:\\\\.|[^\\\\"])+"|[^,]*)(?:,|$)'

# Internal: the A1111 infotext for a metadata list, or "" when it would have
# fewer than three settings (A1111 would read them as prompt). LoRAs are shown the A1111 way: `<lora:name:scale>` in the prompt
# and a `Lora hashes` field.
meta_to_a1111 <- function(meta) {
  prompt <- a1111_text(meta[["prompt"]])
  loras <- if (is.list(meta[["loras"]])) Filter(is.list, meta[["loras"]]) else list()
  tags <- character()
  hashes <- character()
  for (lora in loras) {
    name <- a1111_text(lora[["name"]])
    if (!nzchar(name)) next
    scale <- if (is.numeric(lora[["scale"]]) && length(lora[["scale"]]) == 1) format_double(lora[["scale"]]) else "1"
    tag <- paste0("<lora:", name, ":", scale, ">")
    if (!grepl(tag, prompt, fixed = TRUE)) tags <- c(tags, tag)
    # The hash A1111 and Civitai find a LoRA by (see a1111_lora_hash() in
    # pipeline.py), not our sha256 of the whole file.
    if (rlang::is_string(lora[["a1111_hash"]])) hashes <- c(hashes, paste0(name, ": ", lora[["a1111_hash"]]))
  }
  if (length(tags) > 0) {
    prompt <- paste(c(if (nzchar(prompt)) prompt, tags), collapse = " ")
  }
  size <- if (is.numeric(meta[["width"]]) && is.numeric(meta[["height"]]) &&
              length(meta[["width"]]) == 1 && length(meta[["height"]]) == 1 &&
              !is.na(meta[["width"]]) && !is.na(meta[["height"]])) {
    paste0(meta[["width"]], "x", meta[["height"]])
  }
  clip_skip <- if (is.numeric(meta[["clip_skip"]]) && length(meta[["clip_skip"]]) == 1 && !is.na(meta[["clip_skip"]])) {
    meta[["clip_skip"]] + 1
  }
  # A1111 runs a missing schedule type as "Automatic" (Karras for DPM++ 2M)
  # and a sampler it does not know as DPM++ 2M: a generated image whose
  # sampler or schedule has no A1111 name gives its diffusers class instead.
  generated <- !is.null(meta[["scheduler_config"]])
  sampler <- if (rlang::is_string(meta[["sampler"]]) &&
                 (rlang::is_string(meta[["schedule_type"]]) || !generated)) meta[["sampler"]]
  # A single-file checkpoint as A1111 names it: file name and the first
  # 10 hex digits of its sha256, by which A1111 finds its own copy.
  checkpoint <- identical(meta[["model_source"]], "file") &&
    rlang::is_string(meta[["model"]]) && rlang::is_string(meta[["model_revision"]]) &&
    startsWith(meta[["model_revision"]], "sha256:")
  fields <- list(
    Steps = meta[["steps"]],
    Sampler = sampler,
    `Schedule type` = if (!is.null(sampler)) meta[["schedule_type"]],
    `CFG scale` = meta[["guidance_scale"]],
    Seed = meta[["seed"]],
    Size = size,
    Model = if (checkpoint) tools::file_path_sans_ext(basename(meta[["model"]]))
            else meta[["model_id"]] %||% meta[["model"]],
    `Model hash` = if (checkpoint) substr(meta[["model_revision"]], 8, 17) else meta[["model_hash"]],
    `Denoising strength` = meta[["strength"]],
    `Clip skip` = clip_skip,
    `Lora hashes` = if (length(hashes) > 0) paste(hashes, collapse = ", "),
    `Diffusers scheduler` = if (is.null(sampler)) meta[["scheduler"]]
  )
  # Another tool's fields that png_read_meta() kept as text (`a1111`) go
  # back as they came, so copying an A1111 file's settings keeps them.
  extra <- meta[["a1111"]]
  if (is.list(extra) && !is.null(names(extra))) {
    keep <- vapply(extra, rlang::is_string, logical(1)) &
      grepl("^\\w[\\w \\-/]+$", names(extra), perl = TRUE) &
      !names(extra) %in% c(names(Filter(Negate(is.null), fields)), "Version")
    fields <- c(fields, extra[keep])
  }
  values <- vapply(fields, a1111_value, character(1))
  values <- values[nzchar(values)]
  values <- c(values, Version = paste0("rdiffusers ", pkg_version()))
  # A1111 reads a last line with fewer than three pairs as part of the prompt.
  if (length(values) < 3) {
    return("")
  }
  negative <- a1111_text(meta[["negative_prompt"]])
  lines <- c(
    if (nzchar(prompt)) prompt,   # A1111 strips the empty line of an empty prompt too
    if (nzchar(negative)) paste0("Negative prompt: ", negative),
    paste0(names(values), ": ", values, collapse = ", ")
  )
  paste(lines, collapse = "\n")
}

a1111_text <- function(x) {
  if (rlang::is_string(x) && !is.na(x)) x else ""
}

# One settings value as A1111 writes it (modules/infotext_utils.py quote()).
a1111_value <- function(x) {
  if (is.null(x) || length(x) != 1 || is.na(x)) {
    return("")
  }
  text <- if (is.double(x)) format_double(x) else as.character(x)
  if (grepl("[,:\n]", text)) json_string(text, ascii = FALSE) else text
}

# Internal: parses A1111 infotext into entries named like sd_generate()'s
# arguments. Fields without an equivalent are kept, as text, in `a1111`.
parse_a1111 <- function(text) {
  fields <- a1111_fields(text)
  if (is.null(fields)) {
    return(NULL)
  }
  known <- c("Prompt", "Negative prompt", "Steps", "Sampler", "Schedule type",
             "CFG scale", "Seed", "Size-1", "Size-2", "Model", "Model hash",
             "Denoising strength", "Clip skip", "Version")
  clip <- as_int(fields[["Clip skip"]])
  prompt <- fields[["Prompt"]]
  lora_matches <- regmatches(prompt, gregexpr("<lora:[^:>]+(:[^>]*)?>", prompt))[[1]]
  loras <- lapply(lora_matches, a1111_lora_tag)
  extra <- fields[setdiff(names(fields), known)]
  compact_meta(list(
    prompt = prompt,
    negative_prompt = fields[["Negative prompt"]],
    seed = as_seed(fields[["Seed"]]),
    steps = as_int(fields[["Steps"]]),
    guidance_scale = as_dbl(fields[["CFG scale"]]),
    width = as_int(fields[["Size-1"]]),
    height = as_int(fields[["Size-2"]]),
    model = fields[["Model"]],
    model_hash = fields[["Model hash"]],
    sampler = fields[["Sampler"]],
    schedule_type = fields[["Schedule type"]],
    strength = as_dbl(fields[["Denoising strength"]]),
    clip_skip = if (!is.null(clip)) clip - 1L,
    loras = if (length(loras) > 0) loras,
    version = fields[["Version"]],
    a1111 = if (length(extra) > 0) as.list(extra)
  ))
}

# A `<lora:name:te:unet>` tag as A1111's extra-networks code reads it: the
# first number (or `te=`) is the multiplier, 1 when absent; the UNet's
# (second number or `unet=`) defaults to it and is kept as `unet_scale` only
# when it differs.
a1111_lora_tag <- function(tag) {
  parts <- strsplit(sub("^<lora:(.*)>$", "\\1", tag), ":", fixed = TRUE)[[1]]
  args <- parts[-1]
  named <- grepl("=", args, fixed = TRUE)
  positional <- args[!named]
  value <- function(key) {
    hit <- args[named & startsWith(args, paste0(key, "="))]
    if (length(hit) > 0) as_dbl(sub("^[^=]*=", "", hit[1]))
  }
  te <- value("te") %||% (if (length(positional) >= 1) as_dbl(positional[1])) %||% 1
  unet <- value("unet") %||% (if (length(positional) >= 2) as_dbl(positional[2])) %||% te
  compact(list(name = parts[1], scale = te, unet_scale = if (unet != te) unet))
}

# Prompt, negative prompt and the raw `Key: value` fields (strings), the way
# parse_generation_parameters() splits them, minus its UI defaults.
a1111_fields <- function(text) {
  if (!rlang::is_string(text) || is.na(text)) {
    return(NULL)
  }
  lines <- strsplit(trimws(text, whitespace = a1111_space), "\n", fixed = TRUE)[[1]]
  if (length(lines) == 0) lines <- ""
  last <- lines[length(lines)]
  lines <- lines[-length(lines)]
  pairs <- a1111_pairs(last)
  if (nrow(pairs) < 3) {
    lines <- c(lines, last)
    pairs <- pairs[0, ]
  }
  prompt <- character()
  negative <- character()
  done <- FALSE
  for (line in trimws(lines, whitespace = a1111_space)) {
    if (startsWith(line, "Negative prompt:")) {
      done <- TRUE
      line <- trimws(substring(line, 17), whitespace = a1111_space)
    }
    if (done) negative <- c(negative, line) else prompt <- c(prompt, line)
  }
  fields <- list(Prompt = paste(prompt, collapse = "\n"),
                 `Negative prompt` = paste(negative, collapse = "\n"))
  for (i in seq_len(nrow(pairs))) {
    key <- pairs$key[i]
    value <- pairs$value[i]
    if (nchar(value) >= 2 && startsWith(value, '"') && endsWith(value, '"')) {
      value <- tryCatch(jsonlite::parse_json(value), error = function(e) value)
    }
    size <- regmatches(value, regexec("^([0-9]+)x([0-9]+)$", value))[[1]]
    if (length(size) == 3) {
      fields[[paste0(key, "-1")]] <- size[2]
      fields[[paste0(key, "-2")]] <- size[3]
    } else {
      fields[[key]] <- value
    }
  }
  fields
}

a1111_pairs <- function(line) {
  m <- gregexec(a1111_param_pattern, line, perl = TRUE)
  hits <- regmatches(line, m)[[1]]
  if (length(hits) == 0) {
    return(data.frame(key = character(), value = character()))
  }
  data.frame(key = hits[2, ], value = hits[3, ])
}

# EXIF UserComment (JPEG, WebP) ------------------------------------------------

is_jpeg <- function(head) {
  length(head) >= 3 && identical(head[1:3], as.raw(c(0xff, 0xd8, 0xff)))
}

is_webp <- function(head) {
  length(head) >= 12 && identical(raw_chr(head[1:4]), "RIFF") &&
    identical(raw_chr(head[9:12]), "WEBP")
}

# The EXIF UserComment of a JPEG or WebP file (where A1111 puts its
# infotext), or NULL. Reads only segment headers and the EXIF block.
read_exif_comment <- function(path) {
  con <- file(path, "rb")
  on.exit(close(con))
  head <- readBin(con, "raw", 12)
  exif <- NULL
  if (is_jpeg(head)) {
    seek(con, 2)
    repeat {
      marker <- readBin(con, "raw", 4)
      if (length(marker) < 4 || marker[1] != as.raw(0xff)) break
      type <- as.integer(marker[2])
      len <- as.integer(marker[3]) * 256L + as.integer(marker[4])
      if (type == 0xda || type == 0xd9 || len < 2) break
      data <- readBin(con, "raw", len - 2)
      if (type == 0xe1 && length(data) > 6 && identical(data[1:6], exif_magic)) {
        exif <- data[-(1:6)]
        break
      }
    }
  } else if (is_webp(head)) {
    seek(con, 12)
    repeat {
      hdr <- readBin(con, "raw", 8)
      if (length(hdr) < 8) break
      fourcc <- raw_chr(hdr[1:4])
      len <- sum(as.double(as.integer(hdr[5:8])) * 256^(0:3))
      if (identical(fourcc, "EXIF") && len <= png_text_limit) {
        exif <- readBin(con, "raw", len)
        if (length(exif) > 6 && identical(exif[1:6], exif_magic)) exif <- exif[-(1:6)]
        break
      }
      seek(con, len + len %% 2, origin = "current")
    }
  }
  if (is.null(exif)) {
    return(NULL)
  }
  tryCatch(exif_user_comment(exif), error = function(e) NULL)
}

# "Exif\0\0", which starts an EXIF block.
exif_magic <- as.raw(c(0x45, 0x78, 0x69, 0x66, 0, 0))

# UserComment (tag 0x9286) from a TIFF block, decoded to UTF-8.
exif_user_comment <- function(tiff) {
  big <- identical(raw_chr(tiff[1:2]), "MM")
  u16 <- function(at) {
    b <- as.integer(tiff[at + 1:2])
    if (big) b[1] * 256 + b[2] else b[2] * 256 + b[1]
  }
  u32 <- function(at) {
    b <- as.double(as.integer(tiff[at + 1:4]))
    if (big) sum(b * 256^(3:0)) else sum(b * 256^(0:3))
  }
  find_tag <- function(ifd, tag) {
    n <- u16(ifd)
    for (i in seq_len(min(n, 512))) {
      entry <- ifd + 2 + (i - 1) * 12
      if (entry + 12 > length(tiff)) return(NULL)
      if (u16(entry) == tag) {
        return(list(type = u16(entry + 2), count = u32(entry + 4), value = u32(entry + 8)))
      }
    }
    NULL
  }
  ifd0 <- u32(4)
  entry <- find_tag(ifd0, 0x8769)
  comment <- if (!is.null(entry)) find_tag(entry$value, 0x9286)
  comment <- comment %||% find_tag(ifd0, 0x9286)
  if (is.null(comment) || comment$count < 8 || comment$value + comment$count > length(tiff)) {
    return(NULL)
  }
  data <- tiff[comment$value + seq_len(comment$count)]
  code <- rawToChar(data[1:8][data[1:8] != as.raw(0)])
  body <- data[-(1:8)]
  if (code == "UNICODE") {
    # Byte order is not fixed by the spec: ASCII-heavy text has its zero
    # bytes on the high side, which tells us which side that is.
    even <- sum(body[seq(2, length(body), 2)] == as.raw(0))
    odd <- sum(body[seq(1, length(body), 2)] == as.raw(0))
    enc <- if (odd >= even) "UTF-16BE" else "UTF-16LE"
    text <- iconv(list(body), enc, "UTF-8")
  } else {
    text <- rawToChar(body[body != as.raw(0)])
    if (!validUTF8(text)) text <- iconv(text, "latin1", "UTF-8")
  }
  if (is.na(text)) NULL else enc2utf8(sub("\\s+$", "", text))
}

# A1111 "stealth" metadata: infotext hidden in the least significant bits of
# the alpha channel, column by column, after a 15-byte signature and a 32-bit
# bit count ("stealth_pnginfo" plain, "stealth_pngcomp" gzip-compressed).
read_stealth_a1111 <- function(path) {
  con <- file(path, "rb")
  ihdr <- readBin(con, "raw", 33)
  close(con)
  if (length(ihdr) < 33 || !identical(raw_chr(ihdr[13:16]), "IHDR")) {
    return(NULL)
  }
  width <- unsigned_be(ihdr[17:20])
  height <- unsigned_be(ihdr[21:24])
  colour <- as.integer(ihdr[26])
  # Only RGBA / grey+alpha images, and not huge ones (decoding is in memory).
  if (!colour %in% c(4L, 6L) || width * height > 16e6) {
    return(NULL)
  }
  # As a native raster: 4 bytes a pixel (not 32 as doubles), alpha in the
  # top byte, stored row by row.
  img <- tryCatch(png::readPNG(path, native = TRUE), error = function(e) NULL,
                  warning = function(w) NULL)
  if (is.null(img) || length(dim(img)) != 2 || length(img) < 120 + 32) {
    return(NULL)
  }
  h <- dim(img)[1]
  w <- dim(img)[2]
  pixels <- as.integer(img)
  # Alpha's lowest bit at positions k (0-based) in A1111's column order.
  bits <- function(k) bitwAnd(bitwShiftR(pixels[(k %% h) * w + k %/% h + 1], 24L), 1L)
  to_bytes <- function(b) {
    b <- matrix(b[seq_len(length(b) %/% 8 * 8)], nrow = 8)
    as.raw(colSums(b * c(128, 64, 32, 16, 8, 4, 2, 1)))
  }
  sig <- raw_chr(to_bytes(bits(0:119)))
  if (!sig %in% c("stealth_pnginfo", "stealth_pngcomp")) {
    return(NULL)
  }
  n_bits <- sum(bits(120:151) * 2^(31:0))
  if (n_bits > length(pixels) - 152 || n_bits > png_text_limit * 8) {
    return(NULL)
  }
  data <- to_bytes(bits(152 + seq_len(n_bits) - 1))
  if (sig == "stealth_pngcomp") {
    con <- gzcon(rawConnection(data))
    data <- tryCatch(readBin(con, "raw", png_text_limit + 1), error = function(e) NULL)
    close(con)
    if (is.null(data) || length(data) > png_text_limit) return(NULL)
  }
  text <- rawToChar(data[data != as.raw(0)])
  if (!validUTF8(text)) {
    return(NULL)
  }
  Encoding(text) <- "UTF-8"
  text
}
