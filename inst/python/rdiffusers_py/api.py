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

__all__ = [
    "versions", "devices", "presets", "schedulers", "tiny_model",
    "load_pipeline", "cached_pipelines", "free_pipelines", "generate",
    "pixel_hash",
]


def versions():
    """dict: versions of python, torch, diffusers, transformers, peft,
    accelerate, safetensors, pillow, numpy (str, or None when missing)."""
    raise NotImplementedError


def devices():
    """dict: available (list of "cuda"/"mps"/"cpu" in preference order),
    default (str), cuda_names (list of str), torch_threads (int),
    cpu_bf16 (bool: CPU has native bf16 matmul)."""
    raise NotImplementedError


def presets():
    """dict name -> dict(model_id, family, steps, guidance_scale, width,
    height, scheduler (or None), strength).  Includes "tiny", "tiny-sdxl",
    "tiny-sd3" (built offline) and hub presets such as "sd15", "sd21",
    "sdxl", "sd-turbo", "sdxl-turbo", "sd3-medium"."""
    raise NotImplementedError


def schedulers():
    """dict name -> dict(cls, kwargs, a1111, schedule_type).  Keys are both
    diffusers class names ("EulerAncestralDiscreteScheduler") and A1111
    sampler names ("Euler a", "DPM++ 2M Karras", ...)."""
    raise NotImplementedError


def tiny_model(name, cache_dir):
    """Build (once, deterministically, offline) the tiny random-weight
    pipeline `name` with save_pretrained() under cache_dir; return its dir."""
    raise NotImplementedError


def load_pipeline(model, revision=None, device="auto", dtype="auto",
                  variant=None, config=None, cache_dir=None, optimize="auto",
                  local_files_only=False, single_file=None):
    """Load (or fetch from the cache) a pipeline and return its info dict:
    key, model, model_path, source ("tiny"|"hub"|"dir"|"file"), family
    ("sd15"|"sdxl"|"sd3"), pipeline_class, revision, device, dtype,
    scheduler, optimize, loaded (True when loaded by this call),
    load_seconds."""
    raise NotImplementedError


def cached_pipelines():
    """list of info dicts of the pipelines in the cache."""
    raise NotImplementedError


def free_pipelines(key=None):
    """Drop one cached pipeline (by key) or all; return how many."""
    raise NotImplementedError


def generate(model, prompt, negative_prompt, seeds, out_paths, width, height,
             steps, guidance_scale, task="txt2img", scheduler=None,
             scheduler_config=None, clip_skip=None, strength=None,
             image=None, mask=None, keep_unmasked=True, callback=None,
             **load_args):
    """Generate len(out_paths) images and write each as a pixel-only PNG to
    its out_path.  prompt/negative_prompt/seeds are lists of the same length
    as out_paths (R expands the batch).  Returns one dict per image:
    {"path": str, "meta": dict}, meta holding everything needed to reproduce
    (see README "Metadata"), seeds as str, "pixel_sha256".
    callback(image_index, step, total_steps) is called after every step."""
    raise NotImplementedError


def pixel_hash(path):
    """sha256 hex of the decoded RGB pixels of the image file at path."""
    raise NotImplementedError


# LoRA functions live in lora.py; R reaches them through this module too.
from .lora import load_lora, unload_lora, list_loras, set_lora_scales  # noqa: E402,F401

__all__ += ["load_lora", "unload_lora", "list_loras", "set_lora_scales"]
