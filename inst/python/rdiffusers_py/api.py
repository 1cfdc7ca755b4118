"""The functions the R package calls: one per user operation.

CONTRACT (R side relies on it; change both sides together):
- Arguments arrive already validated and typed by R: ints are Python int,
  floats are float, strings str, optional values None.  Seeds arrive as
  decimal strings ("0" .. "18446744073709551615").
- Return values are plain data only: str, bool, float, int < 2**31, None,
  list and dict of those.  Anything bigger (seeds, byte counts) is a str.
- Errors that the user can fix are raised as the classes in errors.py; R maps
  them to classed R conditions.
"""

# Underscored aliases: this module defines functions named like some modules
# (schedulers, generate), which would otherwise shadow them.
from . import generate as _generate
from . import images as _images
from . import pipeline as _pipeline
from . import schedulers as _schedulers
from . import tiny as _tiny

__all__ = [
    "versions", "devices", "presets", "schedulers", "tiny_model", "tiny_single_file",
    "load_pipeline", "cached_pipelines", "free_pipelines", "free_model", "generate",
    "pixel_hash", "file_sha256", "content_revision",
]


def _entry(model, **load_args):
    return _pipeline.get_entry(model, **load_args)


def versions():
    """dict: versions of python, torch, diffusers, transformers, peft,
    accelerate, safetensors, pillow, numpy (str, or None when missing)."""
    return _pipeline.versions()


def devices():
    """dict: available (list of "cuda"/"mps"/"cpu" in preference order),
    default (str), cuda_names (list of str), torch_threads (int),
    cpu_bf16 (bool: CPU has native bf16 matmul), torch_blas (str: how torch
    was kept on its own BLAS in this process, see _blas.py), blas ("torch"
    or "host": whose BLAS its float32 products run on)."""
    from . import BLAS, TORCH_BLAS
    _pipeline.setup_torch()
    return dict(_pipeline.devices(), torch_blas=TORCH_BLAS, blas=BLAS)


def presets():
    """dict name -> dict(model_id, family, steps, guidance_scale, width,
    height, scheduler (or None), strength).  Includes "tiny", "tiny-sdxl",
    "tiny-sd3" (built offline) and hub presets such as "sd15", "sd21",
    "sdxl", "sd-turbo", "sdxl-turbo", "sd3-medium".  For the tiny ones
    model_id is the preset name itself."""
    return _pipeline.presets()


def schedulers():
    """dict name -> dict(cls, kwargs, a1111, schedule_type).  Keys are both
    diffusers class names ("EulerAncestralDiscreteScheduler") and A1111
    sampler names ("Euler a", "DPM++ 2M Karras", ...).  a1111 and
    schedule_type are None for class-name keys.  SD3 (flow-matching) models
    accept only the FlowMatch* classes and "Euler", "Heun", "LCM", which
    mean their flow-matching versions there."""
    return _schedulers.table()


def tiny_model(name, cache_dir):
    """Build (once, deterministically, offline) the tiny random-weight
    pipeline `name` with save_pretrained() under cache_dir; return its dir.
    cache_dir None: RDIFFUSERS_CACHE_DIR or ~/.cache/rdiffusers."""
    return _tiny.build(name, cache_dir or _pipeline.default_cache_dir())


def tiny_single_file(cache_dir):
    """Write (once, offline) tiny model "tiny" as one original-layout (LDM)
    .safetensors checkpoint under cache_dir; return its path.  It loads
    offline with config = tiny_model("tiny", cache_dir).
    cache_dir None: RDIFFUSERS_CACHE_DIR or ~/.cache/rdiffusers."""
    return _tiny.tiny_single_file(cache_dir or _pipeline.default_cache_dir())


def load_pipeline(model, revision=None, device="auto", dtype="auto",
                  variant=None, config=None, cache_dir=None, optimize="auto",
                  local_files_only=False, single_file=None, trusted=False):
    """Load (or fetch from the cache) a pipeline and return its info dict:
    key, model, model_id, model_path, source ("tiny"|"hub"|"dir"|"file"),
    family ("sd15"|"sdxl"|"sd3"), variant, config (the single-file config
    used, as an absolute path when local; else None), pipeline_class,
    revision, device, dtype,
    scheduler, optimize, loaded (True when loaded by this call),
    load_seconds (float).

    model: preset name, Hugging Face id ("org/name"), diffusers directory,
    or single-file checkpoint (.safetensors; .ckpt/.pt only with
    trusted=True).  config: for single files, a local diffusers directory
    or hub id holding the matching configs (needed offline).
    single_file: True to treat model as a checkpoint file, None to decide
    from what the path is.  cache_dir: where tiny models are built."""
    return dict(_entry(model, revision=revision, device=device, dtype=dtype,
                       variant=variant, config=config, cache_dir=cache_dir,
                       optimize=optimize, local_files_only=local_files_only,
                       single_file=single_file, trusted=trusted).info)


def cached_pipelines():
    """list of info dicts of the pipelines in the cache."""
    return _pipeline.cached()


def free_pipelines(key=None):
    """Drop one cached pipeline (by key) or all; return how many."""
    return _pipeline.free(key)


def free_model(model):
    """Drop every cached pipeline of `model` (any spelling of it: name, key,
    preset or hub id, path); return how many."""
    return sum(_pipeline.free(k) for k in _pipeline.keys_of(model))


def generate(model, prompt, negative_prompt, seeds, out_paths, width, height,
             steps, guidance_scale, task="txt2img", scheduler=None,
             scheduler_config=None, clip_skip=None, strength=None,
             image=None, mask=None, keep_unmasked=True, callback=None,
             also_steps=None, **load_args):
    """Generate len(out_paths) images and write each as a pixel-only PNG to
    its out_path.  prompt/negative_prompt/seeds are lists of the same length
    as out_paths (R expands the batch).  Returns one dict per image:
    {"path": str, "meta": dict, "warnings": [str]}, meta holding every
    entry of dev/ARCHITECTURE.md "Metadata entries" that Python knows (all
    but versions.R, versions.rdiffusers, created; absent ones as None),
    seeds as str, "pixel_sha256".  warnings: messages for the user (e.g. a
    prompt longer than CLIP's 77 tokens); R re-emits them as warnings.

    seeds: decimal strings 0 .. 2^64-1; image i uses a CPU torch.Generator
    seeded with int(seeds[i]) and is generated alone (batch of 1), so it
    regenerates identically on its own.
    width, height, steps, guidance_scale: None = the family's usual
    settings (SD 1.x/2.x 30 steps at 7.5, SDXL 30 at 5.0, SD3 28 at 7.0) at
    the pipeline's native size; meta records the values used.
    scheduler: A1111 or diffusers name; None = the model's default.  The
    cached pipeline's scheduler is never changed.  scheduler_config (the
    dict from meta) rebuilds the scheduler exactly; scheduler then names
    its class (or config["_class_name"] does).
    task "img2img"/"inpaint": image (and mask, white = repaint) are file
    paths; image is resized to width x height, the mask to the image.
    keep_unmasked: paste the input back where the mask is black (exactly).
    callback(image_index, step, total_steps), all ints, image_index and
    step counted from 1, is called after every step, and
    callback(image_index, result=result) with the image's dict as soon as
    its PNG is written, so the caller can keep finished images when a later
    one fails or is interrupted.  An error raised in it (an R interrupt
    arrives as one) ends the call, leaving the pipeline usable (one
    function for both: see with_interrupts() in R/generate.R).
    also_steps: other step counts (ints) checked like steps for the same
    model and scheduler before anything runs, for a sweep's later cells."""
    return _generate.run(model, prompt, negative_prompt, seeds, out_paths,
                         width, height, steps, guidance_scale, task=task,
                         scheduler=scheduler, scheduler_config=scheduler_config,
                         clip_skip=clip_skip, strength=strength, image=image,
                         mask=mask, keep_unmasked=keep_unmasked,
                         callback=callback, also_steps=also_steps, **load_args)


def content_revision(path):
    """The revision a local model records ("sha256:<hex>"): of a checkpoint
    file's bytes, or of the files a diffusers directory's pipeline reads.
    None when path is neither."""
    import os
    if not (os.path.isfile(path) or os.path.isfile(os.path.join(path, "model_index.json"))):
        return None
    return _pipeline.content_revision(path)


def file_sha256(path):
    """sha256 hex of a file's bytes (LoRA files, checkpoints)."""
    return _pipeline.file_sha256(path)


def pixel_hash(path, kind="image"):
    """sha256 hex of the decoded RGB pixels of the image file at path, read
    as an input image or (kind = "mask") as an inpainting mask."""
    return _images.pixel_hash(path, kind)


# LoRA functions live in lora.py; R reaches them through this module too.
from .lora import load_lora, unload_lora, list_loras, set_lora_scales  # noqa: E402,F401

__all__ += ["load_lora", "unload_lora", "list_loras", "set_lora_scales"]


def _releasing_frames(fun):
    """`fun`, whose exceptions no longer hold the locals of the frames they
    passed through.  reticulate keeps the last Python exception alive (1.28
    until another one replaces it), and its traceback's frames would keep
    the pipeline, and a generation's tensors, in memory after sd_free()."""
    import functools
    import traceback

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        try:
            return fun(*args, **kwargs)
        except BaseException as e:
            seen = set()
            while e is not None and id(e) not in seen:
                seen.add(id(e))
                traceback.clear_frames(e.__traceback__)  # running frames are skipped
                e = e.__cause__ or e.__context__
            raise
    return wrapper


for _name in __all__:
    globals()[_name] = _releasing_frames(globals()[_name])
del _name
