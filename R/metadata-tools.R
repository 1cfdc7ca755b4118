# Other tools' metadata, normalized to entries named like sd_generate()'s
# arguments. Each normalizer gets parsed JSON or the text chunks and returns
# a named list (or NULL when the chunks are not that tool's). What a tool
# stores that has no rdiffusers name stays in the raw chunks (attribute
# "chunks" of png_read_meta()'s result).

# ComfyUI: `prompt` is the API graph {node_id: {class_type, inputs}}; inputs
# that are links look like ["node_id", output_index]. We take the first
# sampler node and follow its links to the text encoders, latent and model.
# The custom samplers keep their settings in linked nodes: a guider (prompts,
# cfg, model), a noise node (seed), a sampler select (name) and a scheduler
# (steps, schedule, denoise).
comfyui_samplers <- c("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")

normalize_comfyui <- function(graph) {
  if (!is.list(graph) || length(graph) == 0) {
    return(list())
  }
  class_of <- function(node) if (is.list(node)) as_chr(node$class_type) %||% "" else ""
  classes <- vapply(graph, class_of, character(1))
  samplers <- which(classes %in% comfyui_samplers)
  ids <- suppressWarnings(as.numeric(names(graph)))
  if (length(samplers) == 0) {
    return(list())
  }
  sampler <- graph[[samplers[order(ids[samplers])][1]]]
  inputs <- sampler$inputs
  linked <- function(link) {
    if (is.list(link) && length(link) >= 1) graph[[as.character(link[[1]])]] else NULL
  }
  from <- function(link) {
    node <- linked(link)
    if (is.list(node) && is.list(node$inputs)) node$inputs else list()
  }
  guider <- from(inputs$guider)
  sigmas <- from(inputs$sigmas)
  inputs <- c(inputs[!vapply(inputs, is.null, logical(1))], list(
    positive = guider$positive %||% guider$conditioning,
    negative = guider$negative,
    cfg = guider$cfg,
    model = guider$model,
    noise_seed = from(inputs$noise)$noise_seed,
    sampler_name = from(inputs$sampler)$sampler_name,
    steps = sigmas$steps,
    scheduler = sigmas$scheduler,
    denoise = sigmas$denoise
  ))
  inputs <- inputs[!duplicated(names(inputs))]   # the sampler's own inputs first
  # Follows conditioning links (combine/area nodes) to the first text found.
  # A zeroed-out conditioning has no text, whatever it was made from.
  find_text <- function(link, depth = 0) {
    node <- linked(link)
    if (is.null(node) || depth > 20) return(NULL)
    if (identical(class_of(node), "ConditioningZeroOut")) return("")
    # A text from a primitive node (PrimitiveString, ...) holds it as
    # `value` or `string`.
    for (key in c("text", "text_g", "text_l", "value", "string")) {
      if (rlang::is_string(node$inputs[[key]])) return(node$inputs[[key]])
    }
    for (value in node$inputs) {
      if (is.list(value)) {
        found <- find_text(value, depth + 1)
        if (!is.null(found)) return(found)
      }
    }
    NULL
  }
  # A setting given by another node (a PrimitiveInt, a seed node) is a
  # link to it: its value is that node's.
  primitive_keys <- c("value", "int", "float", "number", "string")
  find_input <- function(link, keys, depth = 0) {
    node <- linked(link)
    if (is.null(node) || depth > 20) return(NULL)
    for (key in keys) {
      value <- node$inputs[[key]]
      if (is.null(value)) next
      if (!is.list(value)) return(value)
      found <- find_input(value, c(key, primitive_keys), depth + 1)
      if (!is.null(found)) return(found)
    }
    for (value in node$inputs) {
      if (is.list(value)) {
        found <- find_input(value, keys, depth + 1)
        if (!is.null(found)) return(found)
      }
    }
    NULL
  }
  setting <- function(x, keys) {
    if (is.list(x)) find_input(x, c(keys, primitive_keys)) else x
  }
  compact_meta(list(
    prompt = find_text(inputs$positive),
    negative_prompt = find_text(inputs$negative),
    seed = as_seed(setting(inputs$seed %||% inputs$noise_seed, c("seed", "noise_seed"))),
    steps = as_int(setting(inputs$steps, "steps")),
    guidance_scale = as_dbl(setting(inputs$cfg, "cfg")),
    width = as_int(find_input(inputs$latent_image, "width")),
    height = as_int(find_input(inputs$latent_image, "height")),
    model = as_chr(find_input(inputs$model, c("ckpt_name", "unet_name"))),
    sampler = as_chr(setting(inputs$sampler_name, "sampler_name")),
    schedule_type = as_chr(setting(inputs$scheduler, "scheduler")),
    strength = as_dbl(setting(inputs$denoise, "denoise"))
  ))
}

# InvokeAI: `invokeai_metadata` (3.x+), `sd-metadata` (2.x) or `Dream`
# (1.x command line: "prompt" -s steps -S seed -W width -H height -C cfg
# -A sampler).
normalize_invokeai <- function(chunks) {
  get <- function(key) chunk_value(chunks, key)
  json <- parse_json_loose(get("invokeai_metadata"))
  if (is.list(json)) {
    model <- json$model
    return(compact_meta(list(
      prompt = as_chr(json$positive_prompt),
      negative_prompt = as_chr(json$negative_prompt),
      seed = as_seed(json$seed),
      steps = as_int(json$steps),
      guidance_scale = as_dbl(json$cfg_scale),
      width = as_int(json$width),
      height = as_int(json$height),
      model = if (is.list(model)) as_chr(model$model_name %||% model$name) else as_chr(model),
      scheduler = as_chr(json$scheduler),
      strength = as_dbl(json$strength),
      task = as_chr(json$generation_mode)
    )))
  }
  json <- parse_json_loose(get("sd-metadata"))
  if (is.list(json) && is.list(json$image)) {
    image <- json$image
    prompt <- image$prompt
    if (is.list(prompt)) prompt <- prompt[[1]]$prompt
    split <- invoke_split_prompt(as_chr(prompt))
    return(compact_meta(list(
      prompt = split$prompt,
      negative_prompt = split$negative,
      seed = as_seed(image$seed),
      steps = as_int(image$steps),
      guidance_scale = as_dbl(image$cfg_scale),
      width = as_int(image$width),
      height = as_int(image$height),
      model = as_chr(json$model_weights),
      sampler = as_chr(image$sampler),
      strength = as_dbl(image$strength),
      task = as_chr(image$type)
    )))
  }
  dream <- get("Dream")
  if (rlang::is_string(dream)) {
    prompt <- regmatches(dream, regexec('^"(.*)"', dream))[[1]]
    # Flags come after the quoted prompt, which may itself contain "-S 5".
    flags <- if (length(prompt) == 2) substring(dream, nchar(prompt[1]) + 1) else dream
    flag <- function(f) {
      hit <- regmatches(flags, regexec(paste0("\\s-", f, "\\s+(\\S+)"), flags))[[1]]
      if (length(hit) == 2) hit[2]
    }
    split <- invoke_split_prompt(if (length(prompt) == 2) prompt[2])
    return(compact_meta(list(
      prompt = split$prompt,
      negative_prompt = split$negative,
      seed = as_seed(flag("S")),
      steps = as_int(flag("s")),
      guidance_scale = as_dbl(flag("C")),
      width = as_int(flag("W")),
      height = as_int(flag("H")),
      sampler = flag("A")
    )))
  }
  NULL
}

# InvokeAI 1.x/2.x wrote the negative prompt in [square brackets].
invoke_split_prompt <- function(prompt) {
  if (is.null(prompt)) {
    return(list(prompt = NULL, negative = NULL))
  }
  neg <- regmatches(prompt, gregexpr("\\[[^]]*\\]", prompt))[[1]]
  if (length(neg) == 0) {
    return(list(prompt = prompt, negative = NULL))
  }
  list(
    prompt = trimws(gsub("\\s+", " ", gsub("\\[[^]]*\\]", "", prompt))),
    negative = paste(substring(neg, 2, nchar(neg) - 1), collapse = ", ")
  )
}

# A text chunk's value, or NULL when the file has no such chunk.
chunk_value <- function(chunks, key) if (key %in% names(chunks)) chunks[[key]] else NULL

# NovelAI: prompt in `Description`, settings as JSON in `Comment`.
normalize_novelai <- function(chunks) {
  json <- parse_json_loose(chunk_value(chunks, "Comment") %||% "") %||% list()
  compact_meta(list(
    prompt = as_chr(chunk_value(chunks, "Description") %||% json$prompt),
    negative_prompt = as_chr(json$uc),
    seed = as_seed(json$seed),
    steps = as_int(json$steps),
    guidance_scale = as_dbl(json$scale),
    width = as_int(json$width),
    height = as_int(json$height),
    model = chunk_value(chunks, "Source"),
    sampler = as_chr(json$sampler),
    strength = as_dbl(json$strength)
  ))
}

# Fooocus: `parameters` is JSON; resolution is the string "(w, h)"; its
# clip_skip counts like A1111's.
normalize_fooocus <- function(json) {
  res <- as.integer(regmatches(json$resolution %||% "", gregexpr("[0-9]+", json$resolution %||% ""))[[1]])
  clip <- as_int(json$clip_skip)
  compact_meta(list(
    prompt = as_chr(json$prompt),
    negative_prompt = as_chr(json$negative_prompt),
    seed = as_seed(json$seed),
    steps = as_int(json$steps),
    guidance_scale = as_dbl(json$guidance_scale),
    width = if (length(res) == 2) res[1],
    height = if (length(res) == 2) res[2],
    model = as_chr(json$base_model),
    sampler = as_chr(json$sampler),
    schedule_type = as_chr(json$scheduler),
    clip_skip = if (!is.null(clip)) clip - 1L,
    version = as_chr(json$version)
  ))
}

# SwarmUI: `parameters` is JSON with the settings in `sui_image_params`.
normalize_swarmui <- function(json) {
  p <- json$sui_image_params
  clip <- as_int(p$clipstopatlayer)
  compact_meta(list(
    prompt = as_chr(p$prompt),
    negative_prompt = as_chr(p$negativeprompt),
    seed = as_seed(p$seed),
    steps = as_int(p$steps),
    guidance_scale = as_dbl(p$cfgscale),
    width = as_int(p$width),
    height = as_int(p$height),
    model = as_chr(p$model),
    sampler = as_chr(p$sampler),
    schedule_type = as_chr(p$scheduler),
    strength = as_dbl(p$initimagecreativity),
    clip_skip = if (!is.null(clip)) abs(clip) - 1L,
    version = as_chr(p$swarm_version)
  ))
}
