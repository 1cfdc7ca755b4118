# Generation metadata in PNG files: writing (png_write_meta) and reading
# (png_read_meta), pure R.
#
# What rdiffusers writes into every PNG, in this order after IHDR:
#   rdiffusers   one typed JSON document (ASCII-escaped, so always tEXt) that
#                round-trips R values exactly; png_read_meta() trusts it first.
#   parameters   A1111-style infotext for A1111 PNG Info, Civitai, sd-parsers
#                (display only, see a1111.R).
#   Software     "rdiffusers <version>".
#   Description  the prompt (the standard PNG keyword for it).
#   negative_prompt, seed, steps, guidance_scale, strength, width, height,
#   model, scheduler
#                one plain chunk each for Pillow users (`Image.info`).
# Never a plain `prompt` chunk: ComfyUI readers take `prompt` as the sign of
# a ComfyUI file and expect its JSON graph there.

meta_format_version <- 1L
meta_json_keyword <- "rdiffusers"
meta_plain_keys <- c("negative_prompt", "seed", "steps", "guidance_scale",
                     "strength", "width", "height", "model", "scheduler")

# Writing ---------------------------------------------------------------------

#' Write generation metadata into a PNG file
#'
#' Copies a PNG to `path` with its text chunks replaced by `meta`. The image
#' data (IHDR, IDAT and every other non-text chunk) is copied byte for byte,
#' so the pixels are untouched. The file is written atomically (a temporary
#' file in the same directory, then a rename).
#'
#' Each PNG gets three kinds of text chunk:
#' * `rdiffusers`: one JSON document in which every value is tagged with its R
#'   type, so [png_read_meta()] returns exactly the list that was written
#'   (integers stay integers, doubles keep all 17 significant digits, `NA`,
#'   `NULL`, vectors and nested lists survive). Values must be plain vectors
#'   or lists (names allowed): dates, matrices and data frames, which would
#'   come back as something else, are refused; factors are stored as their
#'   labels (character).
#' * `parameters`: the settings in AUTOMATIC1111's format, so A1111's PNG Info,
#'   Civitai and other readers show them. A sampler is named the A1111 way
#'   only when A1111 would run it with the schedule that was used, otherwise
#'   as its diffusers class (`Diffusers scheduler`); a single-file checkpoint
#'   by its file name and `Model hash`, and LoRAs by A1111's `Lora hashes`.
#'   Left out when `meta` has fewer than two of the settings it shows (steps, sampler, guidance, seed, size,
#'   model, ...), as A1111 would read so short a settings line as part of the
#'   prompt.
#' * `Software`, `Description` (the prompt) and one plain chunk for each of
#'   `negative_prompt`, `seed`, `steps`, `guidance_scale`, `strength`,
#'   `width`, `height`, `model` and `scheduler`, for readers such as Pillow's
#'   `Image.info`. No plain `prompt` chunk is written, because other readers
#'   take that as the sign of a ComfyUI file.
#'
#' Text outside Latin-1 is stored as UTF-8 (`iTXt` chunks). A `meta` whose
#' JSON would exceed 8 MiB, more than [png_read_meta()] reads, or which nests
#' lists more than 100 deep is refused.
#'
#' @param x An `sd_image` (or `sd_sweep`: its grid, with the grid's metadata),
#'   the path of a PNG file, or a Python PIL image
#'   (saved to a temporary PNG first).
#' @param path Where to write the PNG.
#' @param meta A named list of metadata, such as [png_read_meta()] returns.
#'   Its names must be valid PNG keywords (1-79 Latin-1 characters, no
#'   leading, trailing or double spaces). By
#'   default the image's own metadata: `x$meta` for an `sd_image`, and for a
#'   PNG file the text chunks it already has (copied unchanged).
#' @param overwrite Replace `path` if it exists? If `FALSE` (the default) an
#'   existing file is left untouched and an error of class
#'   `rdiffusers_error_exists` is signalled, also when the file appears while
#'   this one is being written.
#' @returns `path`, invisibly.
#' @family metadata
#' @export
#' @examples
#' src <- tempfile(fileext = ".png")
#' png::writePNG(array(0.5, c(8, 8, 3)), src)
#' out <- tempfile(fileext = ".png")
#' png_write_meta(src, out, meta = list(prompt = "3 cats on a sofa",
#'                                       seed = 42, steps = 20L))
#' png_read_meta(out)
png_write_meta <- function(x, path, meta = NULL, overwrite = FALSE) {
  if (is.list(path) && is.null(meta)) {
    # png_write_meta(file, list(...)): the metadata landed in `path`.
    abort_input(
      c("{.arg path} must be where to write the PNG, not a list.",
        i = "Pass the metadata as {.arg meta}: {.code png_write_meta(x, path, meta = list(...))}.")
    )
  }
  check_string(path)
  check_flag(overwrite)
  src <- meta_source_path(x)
  on.exit(if (!identical(src$tmp, FALSE)) remove_path(src$path), add = TRUE)
  if (is.null(meta)) {
    meta <- src$meta
  }
  # What png_read_meta() returned, written back as the list it prints.
  if (inherits(meta, "sd_meta")) meta <- as.list(meta)
  if (!is.null(meta)) {
    check_meta(meta)
  }
  check_file_exists(src$path, "Image file", class = "rdiffusers_error_file")
  check_file_target(path)
  if (path_taken(path) && !overwrite) {
    abort_exists(path, call = environment())
  }
  if (is.null(meta)) {
    # No new metadata: keep the file's own chunks as they are.
    bytes <- png_replace_text(src$path, NULL)
    keep <- png_text_chunk_bytes(src$path)
    bytes <- png_insert_after_ihdr(bytes, keep)
  } else {
    bytes <- png_replace_text(src$path, meta_chunks(meta))
  }
  write_atomic(bytes, path, overwrite = overwrite)
  invisible(path)
}

# Where the pixels come from: list(path, meta, tmp) where tmp says whether
# path is a temporary file we made (and must delete).
meta_source_path <- function(x, call = caller_env()) {
  x <- one_image(x, arg = "x", call = call)
  if (inherits(x, "sd_image") || inherits(x, "sd_sweep")) {
    return(list(path = x$path, meta = x$meta, tmp = FALSE))
  }
  if (is.character(x) && length(x) == 1 && !is.na(x)) {
    return(list(path = x, meta = NULL, tmp = FALSE))
  }
  if (inherits(x, "python.builtin.object") && reticulate::py_has_attr(x, "save")) {
    tmp <- tempfile("rdiffusers-pil-", fileext = ".png")
    tryCatch(
      x$save(tmp, format = "PNG"),
      error = function(e) {
        sd_abort("Could not save the Python image as PNG.",
                 class = "rdiffusers_error_python", parent = e, call = call)
      }
    )
    return(list(path = tmp, meta = NULL, tmp = TRUE))
  }
  abort_input(
    "{.arg x} must be an {.cls sd_image}, a PNG file path or a PIL image, not {.obj_type_friendly {x}}.",
    call = call
  )
}

check_meta <- function(meta, arg = caller_arg(meta), call = caller_env()) {
  if (!is.list(meta) || (length(meta) > 0 && is.null(names(meta)))) {
    abort_input("{.arg {arg}} must be a named list.", call = call)
  }
  check_png_keywords(names(meta), arg = arg, call = call)
  if (anyDuplicated(names(meta))) {
    abort_input("{.arg {arg}} has duplicated names: {.val {unique(names(meta)[duplicated(names(meta))])}}.",
                call = call)
  }
  invisible(meta)
}

# The raw text chunks written for `meta`.
meta_chunks <- function(meta, call = caller_env()) {
  json <- meta_to_json(meta)
  size <- nchar(json, type = "bytes")
  if (size > png_text_limit) {
    abort_input(
      c("{.arg meta} is too large to store: {sprintf('%.1f', size / 1024^2)} MiB of JSON.",
        i = "A metadata chunk holds at most {png_text_limit / 1024^2} MiB, what {.fn png_read_meta} reads."),
      call = call
    )
  }
  chunks <- list(png_text_chunk(meta_json_keyword, json))
  a1111 <- meta_to_a1111(meta)
  if (nzchar(a1111)) {
    chunks <- c(chunks, list(png_text_chunk("parameters", a1111)))
  }
  chunks <- c(chunks, list(png_text_chunk("Software", paste("rdiffusers", pkg_version()))))
  if (rlang::is_string(meta[["prompt"]])) {
    chunks <- c(chunks, list(png_text_chunk("Description", meta[["prompt"]])))
  }
  for (key in intersect(meta_plain_keys, names(meta))) {
    value <- meta[[key]]
    if (is.atomic(value) && length(value) == 1 && !is.na(value)) {
      chunks <- c(chunks, list(png_text_chunk(key, format_plain(value))))
    }
  }
  chunks
}

format_plain <- function(value) {
  if (is.double(value)) format_double(value) else as.character(value)
}

pkg_version <- function() {
  as.character(utils::packageVersion("rdiffusers"))
}

# Raw bytes of the text chunks of a PNG, in order (used to keep them as they
# are when no new metadata is given).
png_text_chunk_bytes <- function(path) {
  bytes <- readBin(path, "raw", file.size(path))
  out <- list()
  pos <- 8
  n <- length(bytes)
  while (pos + 12 <= n) {
    len <- unsigned_be(bytes[pos + 1:4])
    type <- raw_chr(bytes[pos + 5:8])
    end <- pos + 12 + len
    if (end > n) break
    if (type %in% png_text_types) out[[length(out) + 1]] <- bytes[(pos + 1):end]
    pos <- end
    if (identical(type, "IEND")) break
  }
  out
}

png_insert_after_ihdr <- function(bytes, chunks) {
  if (length(chunks) == 0) {
    return(bytes)
  }
  ihdr_end <- 8 + 12 + unsigned_be(bytes[9:12])
  c(bytes[seq_len(ihdr_end)], unlist(chunks, use.names = FALSE),
    bytes[-seq_len(ihdr_end)])
}

# Typed JSON --------------------------------------------------------------------
#
# Every value is a node {"t": type, "v": [...]} plus "n": [names] when named.
# Types: null, integer, double, logical, character, list. NA is JSON null;
# NaN/Inf/-Inf are the strings "NaN", "Inf", "-Inf" in a double node; doubles
# are written with the fewest digits (15-17) that give back the same double.

meta_to_json <- function(meta) {
  paste0('{"format":"rdiffusers","version":', meta_format_version,
         ',"meta":', json_node(meta), "}")
}

json_node <- function(x, depth = 0L) {
  if (is.null(x)) {
    return('{"t":"null"}')
  }
  if (depth > 100L) {
    abort_input("Metadata lists may nest at most 100 deep.", call = NULL)
  }
  if (is.factor(x)) {
    x <- as.character(x)
  }
  # Only names survive the round trip: a class (dates, times, data frames)
  # or dim would come back as a bare vector, or fail deep inside.
  extra <- setdiff(names(attributes(x)), "names")
  if (length(extra)) {
    abort_input(
      c("Metadata values must be plain vectors or lists (names allowed), not {.obj_type_friendly {x}} (attributes: {.val {extra}}).",
        i = "Convert it first, e.g. {.code format(Sys.time())}, {.code as.vector(m)} or {.code as.list(df)}."),
      call = NULL
    )
  }
  nm <- names(x)
  names_json <- if (is.null(nm)) "" else paste0(',"n":', json_array(json_strings_na(nm)))
  if (is.list(x)) {
    items <- vapply(x, json_node, character(1), depth = depth + 1L, USE.NAMES = FALSE)
    return(paste0('{"t":"list","v":', json_array(items), names_json, "}"))
  }
  type <- typeof(x)
  values <- switch(type,
    integer = ifelse(is.na(x), "null", as.character(x)),
    double = json_doubles(x),
    logical = ifelse(is.na(x), "null", ifelse(x, "true", "false")),
    character = json_strings_na(x),
    abort_input("Metadata values must be NULL, atomic vectors or lists, not {.obj_type_friendly {x}}.")
  )
  paste0('{"t":"', type, '","v":', json_array(values), names_json, "}")
}

json_array <- function(items) {
  paste0("[", paste(items, collapse = ","), "]")
}

json_doubles <- function(x) {
  out <- character(length(x))
  out[is.na(x)] <- "null"
  out[is.nan(x)] <- '"NaN"'
  out[x %in% Inf] <- '"Inf"'
  out[x %in% -Inf] <- '"-Inf"'
  ok <- is.finite(x)
  out[ok] <- format_double(x[ok])
  out
}

# Shortest of 15, 16 or 17 significant digits that reads back identically;
# whole numbers below 2^64 (the seed range) in plain digits, so a seed such
# as 3456789012345670 is never written as 3.45678901234567e+15 (which A1111,
# Civitai and a Pillow user could not use).
format_double <- function(x) {
  out <- sprintf("%.15g", x)
  for (digits in 16:17) {
    redo <- as.double(out) != x
    if (!any(redo)) break
    out[redo] <- sprintf(paste0("%.", digits, "g"), x[redo])
  }
  whole <- is.finite(x) & x == trunc(x) & abs(x) < 2^64
  out[whole] <- sprintf("%.0f", x[whole])
  out
}

# JSON string literals. ascii = TRUE escapes everything outside ASCII as
# \uXXXX (surrogate pairs beyond the BMP) so the JSON fits a tEXt chunk.
# NA is null (ifelse() would run json_string() on the NA too).
json_strings_na <- function(x) {
  out <- rep("null", length(x))
  ok <- !is.na(x)
  out[ok] <- json_string(x[ok])
  out
}

json_string <- function(x, ascii = TRUE) {
  x <- as.character(x)
  if (!all(utf8_convertible(x))) {
    abort_input("Metadata text must be valid UTF-8.", call = NULL)
  }
  vapply(enc2utf8(x), json_string1, character(1), ascii = ascii, USE.NAMES = FALSE)
}

json_string1 <- function(s, ascii) {
  cp <- utf8ToInt(s)
  out <- intToUtf8(cp, multiple = TRUE)
  esc <- cp < 32 | cp == 34 | cp == 92 | (ascii & cp > 126)
  if (any(esc)) {
    named <- c(`8` = "\\b", `9` = "\\t", `10` = "\\n", `12` = "\\f",
               `13` = "\\r", `34` = '\\"', `92` = "\\\\")
    idx <- which(esc)
    code <- cp[idx]
    rep <- ifelse(as.character(code) %in% names(named),
                  named[as.character(code)], u_escape(code))
    out[idx] <- rep
  }
  paste0('"', paste(out, collapse = ""), '"')
}

# The bytes json_string(s) writes, counted without building the string.
json_size <- function(s) {
  cp <- utf8ToInt(s)
  short <- cp %in% c(8, 9, 10, 12, 13, 34, 92)
  sum(ifelse(short, 2, ifelse(cp > 0xFFFF, 12, ifelse(cp < 32 | cp > 126, 6, 1)))) + 2
}

u_escape <- function(code) {
  vapply(code, function(cp) {
    if (cp > 0xFFFF) {
      cp <- cp - 0x10000
      sprintf("\\u%04x\\u%04x", 0xD800 + cp %/% 1024, 0xDC00 + cp %% 1024)
    } else {
      sprintf("\\u%04x", cp)
    }
  }, character(1))
}

json_to_meta <- function(text) {
  doc <- tryCatch(jsonlite::parse_json(text, simplifyVector = FALSE),
                  error = function(e) NULL)
  if (!is.list(doc) || !identical(doc$format, "rdiffusers") || !is.list(doc$meta)) {
    return(NULL)
  }
  meta <- tryCatch(json_decode_node(doc$meta), error = function(e) NULL)
  # rdiffusers writes a named list; anything else is not its metadata.
  if (!is.list(meta) || (length(meta) > 0 && is.null(names(meta)))) NULL else meta
}

json_decode_node <- function(node) {
  type <- node$t
  if (!rlang::is_string(type)) {
    stop("bad node")
  }
  if (type == "null") {
    return(NULL)
  }
  v <- node$v
  if (!is.list(v)) {
    stop("bad node")
  }
  # Every element must have the node's type (null = NA): a chunk edited by
  # hand into something else is invalid as a whole, never coerced.
  elements <- function(ok, na, convert = identity) {
    vapply(v, function(e) {
      if (is.null(e)) return(na)
      if (length(e) != 1 || !ok(e)) stop("bad value")
      convert(e)
    }, na)
  }
  out <- switch(type,
    list = lapply(v, json_decode_node),
    integer = elements(function(e) is.numeric(e) && e == round(e) &&
                         abs(e) <= .Machine$integer.max, NA_integer_, as.integer),
    double = elements(function(e) is.numeric(e) || e %in% c("NaN", "Inf", "-Inf"),
                      NA_real_, decode_double),
    logical = elements(is.logical, NA),
    character = elements(is.character, NA_character_, enc2utf8),
    stop("unknown type")
  )
  names(out) <- NULL
  if (!is.null(node$n)) {
    names(out) <- vapply(node$n, function(e) if (is.null(e)) NA_character_ else enc2utf8(e),
                         character(1))
  }
  out
}

decode_double <- function(e) {
  if (is.character(e)) {
    return(switch(e, `NaN` = NaN, `Inf` = Inf, `-Inf` = -Inf))
  }
  as.double(e)
}

# Reading -----------------------------------------------------------------------

#' Read generation metadata from an image file
#'
#' Reads the settings stored in a PNG (or the EXIF comment of a JPEG or WebP)
#' without Python. Files written by rdiffusers come back exactly as written.
#' Files written by other tools are recognised and their settings returned
#' under the same names as [sd_generate()]'s arguments (`prompt`,
#' `negative_prompt`, `seed`, `steps`, `guidance_scale`, `width`, `height`,
#' `model`, `scheduler`, `sampler`, `strength`, `clip_skip`, ...):
#' AUTOMATIC1111 (and Forge, SD.Next, Civitai; also its JPEG/WebP EXIF comment
#' and "stealth" alpha-channel metadata), ComfyUI, InvokeAI, NovelAI, Fooocus
#' and SwarmUI. PNGs whose metadata was written one text chunk per setting
#' (for example with Pillow's `PngInfo`) come back with values that are
#' unambiguously numbers or logicals converted; everything else, prompts
#' included, stays text.
#'
#' Broken or hostile files never crash the reader: text chunks with a bad
#' checksum, invalid UTF-8 or more than 8 MiB of (decompressed) text are
#' skipped with a warning of class `rdiffusers_warning_metadata`.
#'
#' @param path Path of a PNG, JPEG or WebP file, or an `sd_image` (or an
#'   `sd_sweep`: its grid).
#' @param format How to interpret the metadata: `"auto"` (the default) picks
#'   the best source; `"rdiffusers"`, `"a1111"`, `"comfyui"`, `"invokeai"`,
#'   `"novelai"`, `"fooocus"`, `"swarmui"` or `"text"` (plain text chunks)
#'   force one; `"raw"` returns the text chunks as a named list of strings.
#' @returns A named list of class `sd_meta` with attributes `tool` (the tool
#'   that wrote the file, e.g. `"rdiffusers"`, `"a1111"`, `"comfyui"`, or
#'   `"unknown"`) and `chunks` (a named character vector of all text chunks).
#'   An empty list (tool `"none"`) when the file has no metadata. Use `as.list()` to drop
#'   the class and attributes, e.g. to compare with `identical()`.
#' @family metadata
#' @export
#' @examples
#' src <- tempfile(fileext = ".png")
#' png::writePNG(array(0.5, c(8, 8, 3)), src)
#' out <- tempfile(fileext = ".png")
#' meta <- list(prompt = "a lighthouse", seed = 1234, steps = 30L,
#'              guidance_scale = 7.5, loras = list())
#' png_write_meta(src, out, meta = meta)
#' m <- png_read_meta(out)
#' m
#' identical(as.list(m), meta)
png_read_meta <- function(path, format = "auto") {
  path <- image_path(path)
  formats <- c("auto", "rdiffusers", "a1111", "comfyui", "invokeai", "novelai", "fooocus",
               "swarmui", "text", "raw")
  check_choice(format, formats)
  check_file_exists(path, "Image file", class = "rdiffusers_error_file")
  con <- file(path, "rb")
  head <- readBin(con, "raw", 16)
  close(con)
  if (length(head) == 0) {
    sd_abort("{.file {path}} is empty.", class = "rdiffusers_error_file")
  }
  if (png_has_signature(head)) {
    chunks <- png_text_chunks(path)
    stealth <- if (format %in% c("auto", "a1111") && !any(c(meta_json_keyword, "parameters") %in% names(chunks))) {
      read_stealth_a1111(path)
    }
    if (!is.null(stealth)) {
      chunks[["parameters"]] <- stealth
    }
  } else if (is_jpeg(head) || is_webp(head)) {
    comment <- read_exif_comment(path)
    chunks <- if (is.null(comment)) character() else c(parameters = comment)
  } else {
    sd_abort("{.file {path}} is not a PNG, JPEG or WebP file.",
             class = "rdiffusers_error_file")
  }
  if (format == "raw") {
    return(as.list(chunks))
  }
  parsed <- parse_chunks(chunks, format)
  new_sd_meta(parsed$meta, parsed$tool, chunks)
}

new_sd_meta <- function(meta, tool, chunks) {
  structure(meta, class = "sd_meta", tool = tool, chunks = chunks)
}

#' @export
as.list.sd_meta <- function(x, ...) {
  attr(x, "tool") <- NULL
  attr(x, "chunks") <- NULL
  unclass(x)
}

#' @export
format.sd_meta <- function(x, ...) {
  x <- as.list.sd_meta(x)
  header <- paste0("<sd_meta> ", length(x), " entr", if (length(x) == 1) "y" else "ies")
  if (length(x) == 0) {
    return(header)
  }
  show <- vapply(x, function(v) {
    if (is.null(v)) return("NULL")
    if (is.list(v)) return(paste0("<list of ", length(v), ">"))
    text <- paste(if (is.character(v)) encodeString(v, quote = '"') else format(v, digits = 15),
                  collapse = ", ")
    if (nchar(text) > 60) paste0(substr(text, 1, 57), "...") else text
  }, character(1))
  c(header, paste0("  ", format(names(x)), " ", show))
}

#' @export
print.sd_meta <- function(x, ...) {
  out <- format(x, ...)
  tool <- attr(x, "tool") %||% "unknown"
  out[1] <- paste0(out[1], " (written by ", tool, ")")
  cat(out, sep = "\n")
  invisible(x)
}

# Picks the parser for a set of text chunks: list(meta, tool).
parse_chunks <- function(chunks, format = "auto") {
  get <- function(key) if (key %in% names(chunks)) chunks[[key]] else NULL
  parsers <- list(
    rdiffusers = function() {
      json <- get(meta_json_keyword)
      if (is.null(json)) return(NULL)
      meta <- json_to_meta(json)
      if (is.null(meta)) meta_warn("The {.val rdiffusers} metadata chunk is not valid; ignored it.")
      meta
    },
    swarmui = function() {
      json <- parse_json_loose(get("parameters"))
      if (is.list(json) && is.list(json$sui_image_params)) normalize_swarmui(json)
    },
    fooocus = function() {
      json <- parse_json_loose(get("parameters"))
      if (is.list(json) && (identical(get("fooocus_scheme"), "fooocus") ||
                            identical(json$metadata_scheme, "fooocus"))) normalize_fooocus(json)
    },
    comfyui = function() {
      json <- parse_json_loose(get("prompt"))
      if (!is_comfyui_graph(json) && is.null(get("workflow"))) return(NULL)
      meta <- normalize_comfyui(json)
      # A graph whose sampler says nothing yields to an A1111 text beside it.
      if (format == "auto" && !any(c("prompt", "seed", "steps") %in% names(meta)) &&
          is.character(get("parameters"))) {
        return(NULL)
      }
      meta
    },
    invokeai = function() normalize_invokeai(chunks),
    novelai = function() {
      if (identical(get("Software"), "NovelAI")) normalize_novelai(chunks)
    },
    a1111 = function() {
      text <- get("parameters")
      # JSON there is another tool's (Fooocus); a prompt may start with `{`
      # ("{red|blue} hair", NovelAI-style emphasis) and still be A1111's.
      if (is.character(text) && !is.list(parse_json_loose(text))) parse_a1111(text)
    },
    text = function() normalize_plain(chunks)
  )
  order <- if (format == "auto") names(parsers) else format
  for (tool in order) {
    meta <- parsers[[tool]]()
    if (!is.null(meta)) {
      if (tool == "text") {
        tool <- if (length(meta) > 0) "unknown" else "none"
      }
      return(list(meta = meta, tool = tool))
    }
  }
  if (format != "auto") {
    abort_metadata("No {.val {format}} metadata found.")
  }
  list(meta = list(), tool = "none")
}

# A ComfyUI API graph: an object of nodes, each with a `class_type` (a
# `prompt` chunk that merely holds JSON, say a list of prompts, is not one).
is_comfyui_graph <- function(json) {
  is.list(json) && !is.null(names(json)) &&
    any(vapply(json, function(node) is.list(node) && rlang::is_string(node$class_type), logical(1)))
}

abort_metadata <- function(message, ..., call = caller_env(), .envir = parent.frame()) {
  sd_abort(message, class = "rdiffusers_error_metadata", ..., call = call, .envir = .envir)
}

# JSON from other tools, or NULL. Integers too big for a double to hold
# exactly (seeds up to 2^64 - 1) come back as decimal strings with every
# digit; the parser tells numbers from digits inside strings (a prompt).
parse_json_loose <- function(text) {
  if (!is.character(text) || !grepl("^\\s*[{\\[]", text)) {
    return(NULL)
  }
  tryCatch(jsonlite::parse_json(quote_big_integers(text), simplifyVector = FALSE,
                                bigint_as_char = TRUE),
           error = function(e) NULL)
}

# jsonlite's bigint_as_char stops at the int64 range and returns bigger
# integers (ComfyUI seeds go up to 2^64 - 1) as rounded doubles, so numbers
# of 19 or more digits are quoted first. Strings are matched as whole tokens
# so that digits inside a prompt are left alone.
quote_big_integers <- function(text) {
  if (!grepl("[0-9]{19}", text)) {
    return(text)
  }
  m <- gregexpr('"(?:[^"\\\\]|\\\\.)*"|(?<![0-9.eE+-])-?[0-9]{19,}(?![.eE0-9])', text,
                perl = TRUE)
  tokens <- regmatches(text, m)[[1]]
  big <- !startsWith(tokens, '"')
  tokens[big] <- paste0('"', tokens[big], '"')
  regmatches(text, m) <- list(tokens)
  text
}

# Seeds: double when exact (<= 2^53), else the decimal string.
as_seed <- function(x) {
  if (is.null(x) || length(x) != 1 || is.na(x)) {
    return(NULL)
  }
  if (is.numeric(x)) {
    return(if (abs(x) <= 2^53) as.double(x) else format(x, scientific = FALSE))
  }
  x <- trimws(as.character(x))
  if (!grepl("^-?[0-9]+$", x)) {
    return(x)
  }
  x <- sub("^(-?)0+([0-9])", "\\1\\2", x)
  value <- as.double(x)
  if (abs(value) <= 2^53) value else x
}

as_int <- function(x) {
  if (is.null(x) || length(x) != 1) return(NULL)
  value <- suppressWarnings(as.double(x))
  if (is.na(value) || value != round(value) || abs(value) > .Machine$integer.max) {
    return(NULL)
  }
  as.integer(value)
}

as_dbl <- function(x) {
  if (is.null(x) || length(x) != 1) return(NULL)
  value <- suppressWarnings(as.double(x))
  if (is.na(value)) NULL else value
}

as_chr <- function(x) {
  if (is.null(x) || length(x) != 1 || is.na(x)) NULL else as.character(x)
}

# Drops NULL entries and keeps the sd_generate() order first.
compact_meta <- function(x) {
  x <- compact(x)
  front <- c("prompt", "negative_prompt", "seed", "steps", "guidance_scale",
             "width", "height", "model", "scheduler", "sampler", "schedule_type",
             "strength", "clip_skip")
  x[c(intersect(front, names(x)), setdiff(names(x), front))]
}

# Plain per-key text chunks ----------------------------------------------------

# Keys whose values are text whatever they look like.
text_keys <- c("prompt", "negative_prompt", "prompt_2", "prompt_3", "model",
               "model_id", "scheduler", "sampler", "schedule_type", "Description",
               "Title", "Software", "Comment", "Author")
key_aliases <- c(num_inference_steps = "steps", cfg_scale = "guidance_scale",
                 cfg = "guidance_scale", guidance = "guidance_scale",
                 negative = "negative_prompt", `Negative prompt` = "negative_prompt",
                 Description = "prompt", sampler_name = "sampler")

normalize_plain <- function(chunks) {
  chunks <- chunks[!names(chunks) %in% c(meta_json_keyword)]
  if (length(chunks) == 0) {
    return(list())
  }
  keys <- unname(names(chunks))
  aliased <- keys %in% names(key_aliases)
  keys[aliased] <- key_aliases[keys[aliased]]
  # Where a key and its alias both occur, the first in the file wins.
  keep <- which(!duplicated(keys))
  out <- lapply(keep, function(i) type_text_value(keys[[i]], chunks[[i]]))
  names(out) <- keys[keep]
  compact_meta(out)
}

# "Unambiguous" means: an integer without leading zeros, a plain decimal, or
# a logical literal. "1e5", "007", "NA", "3 cats" stay text, and so does
# anything under a text key (prompt, model, ...).
type_text_value <- function(key, value) {
  if (key %in% text_keys || grepl("prompt", key, fixed = TRUE)) {
    return(value)
  }
  v <- trimws(value)
  if (key == "seed" && grepl("^-?(0|[1-9][0-9]*)$", v)) {
    return(as_seed(v))
  }
  if (grepl("^-?(0|[1-9][0-9]*)$", v)) {
    num <- as.double(v)
    if (key %in% c("guidance_scale", "strength")) return(num)
    if (abs(num) <= .Machine$integer.max) return(as.integer(num))
    return(if (abs(num) <= 2^53) num else value)
  }
  if (grepl("^-?(0|[1-9][0-9]*)\\.[0-9]+$", v)) {
    return(as.double(v))
  }
  if (v %in% c("TRUE", "True", "true")) return(TRUE)
  if (v %in% c("FALSE", "False", "false")) return(FALSE)
  value
}

