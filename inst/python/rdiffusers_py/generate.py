"""Running a pipeline: one image per call, one CPU generator per image.

Images are generated one at a time with their own CPU torch.Generator seeded
from the image's seed, so image i of a batch regenerates bit-identically on
its own, and results do not depend on the device's random number generator.
"""

import contextlib
import inspect
import re

from . import images, lora, pipeline, schedulers
from .errors import InputError

__all__ = ["run"]

_TASKS = ("txt2img", "img2img", "inpaint")
_CLIP_FAMILIES = ("sd15", "sdxl")  # prompts go to CLIP only (77 tokens)


def _seed(s):
    """A seed from R (a decimal string: R's numbers cannot hold all 64 bits)
    or a Python int. Only plain ASCII digits: int() would also take "1_000",
    " 42\n" or other scripts' digits, which would then be recorded as
    another spelling than the one given."""
    if isinstance(s, int) and not isinstance(s, bool):
        v = s
    elif isinstance(s, str) and re.fullmatch(r"[0-9]+", s, re.ASCII):
        v = int(s)
    else:
        raise InputError("seed must be a whole number between 0 and 2^64 - 1, not %r." % (s,))
    if not 0 <= v <= 2 ** 64 - 1:
        raise InputError("seed must be between 0 and 2^64 - 1, not %s." % s)
    return v


def _as_list(x, n, what):
    if x is None or isinstance(x, str):
        return [x] * n
    x = list(x)
    if len(x) == 1:
        return x * n
    if len(x) != n:
        raise InputError("%s has %d values for %d images." % (what, len(x), n))
    return x


def _long_prompt_warnings(pipe, texts):
    tok = getattr(pipe, "tokenizer", None)
    if tok is None:
        return []
    limit = int(getattr(tok, "model_max_length", 77) or 77)
    out = []
    for what, text in texts:
        if not text:
            continue
        # verbose=False: our warning replaces transformers' notice.
        n = len(tok(text, truncation=False, add_special_tokens=True,
                    verbose=False)["input_ids"])
        if n > limit:
            out.append("The %s is %d tokens long; CLIP reads only the first %d (with start and "
                       "end tokens), so the rest is ignored." % (what, n, limit))
    return out


def run(model, prompt, negative_prompt, seeds, out_paths, width, height, steps,
        guidance_scale, task="txt2img", scheduler=None, scheduler_config=None,
        clip_skip=None, strength=None, image=None, mask=None, keep_unmasked=True,
        callback=None, also_steps=None, **load_args):
    import torch
    if task not in _TASKS:
        raise InputError("task must be one of %s, not %r." % (", ".join(_TASKS), task))
    out_paths = [out_paths] if isinstance(out_paths, str) else list(out_paths)
    n = len(out_paths)
    if n == 0:
        return []
    prompts = _as_list(prompt, n, "prompt")
    negatives = _as_list(negative_prompt, n, "negative_prompt")
    seeds = [_seed(s) for s in _as_list(seeds, n, "seed")]
    if task != "txt2img":
        if image is None:
            raise InputError("%s needs an input image (image)." % task)
        if strength is None:
            strength = 0.75 if task == "img2img" else 1.0
        strength = float(strength)
        if not 0.0 < strength <= 1.0:
            raise InputError("strength must be in (0, 1], not %s." % strength)
    if task == "inpaint" and mask is None:
        raise InputError("inpaint needs a mask (white = repaint).")

    entry = pipeline.get_entry(model, **load_args)
    info = entry.info
    family = info["family"]

    with entry.lock:
        pipe = entry.task(task)
        # Models without a preset (hub ids, directories, files) get their
        # family's usual settings and the pipeline's native size; the values
        # used are what the metadata records.
        d_steps, d_guidance = _FAMILY_DEFAULTS[family]
        steps = int(d_steps if steps is None else steps)
        guidance_scale = float(d_guidance if guidance_scale is None else guidance_scale)
        factor = _size_factor(pipe, family)
        init = init_full = mask_img = None
        init_hash = mask_hash = None
        if task != "txt2img":
            init_full = images.load_image(image)
            init_hash = images.pixel_hash(init_full)  # the pixels used
            # A size not given is the input's, rounded down to what the
            # model takes (496 x 328 from 500 x 333; 496 x 320 for SD3's
            # 2 x 2 patches).
            if width is None:
                width = max(factor, init_full.width // factor * factor)
            if height is None:
                height = max(factor, init_full.height // factor * factor)
        native = _native_size(pipe)
        width = int(native if width is None else width)
        height = int(native if height is None else height)
        if steps < 1:
            raise InputError("steps must be at least 1, not %d." % steps)
        if task != "txt2img" and _steps_run(family, steps, strength) < 1:
            # Zero steps fail deep inside diffusers.
            raise InputError("steps x strength must be at least 1 (%d x %s runs no step): "
                             "raise steps or strength." % (steps, strength))
        if clip_skip is not None:
            encoder = getattr(pipe, "text_encoder", None)
            layers = getattr(getattr(encoder, "config", None), "num_hidden_layers", None)
            if layers is not None and not 0 <= int(clip_skip) < layers:
                raise InputError("clip_skip must be between 0 and %d for this model, not %s."
                                 % (layers - 1, clip_skip))
        if width % factor or height % factor or width < factor or height < factor:
            raise InputError("width and height must be positive multiples of %d for this model, "
                             "not %d x %d." % (factor, width, height))
        limit = _max_size(pipe, family)
        if limit is not None and max(width, height) > limit:
            raise InputError("width and height must be at most %d for this model, not %d x %d."
                             % (limit, width, height))

        if task != "txt2img":
            init = init_full if init_full.size == (width, height) else \
                init_full.resize((width, height), resample=_lanczos())
        if task == "inpaint":
            m = images.load_mask(mask)
            mask_hash = images.pixel_hash(m)
            mask_img = m if m.size == init.size else m.resize(init.size, resample=_lanczos())

        # diffusers logs notices here (config entries a class ignores,
        # settings it adjusts) on every call: the metadata records what ran.
        with pipeline.quiet_logs():
            sched = schedulers.build(pipe.scheduler, scheduler, scheduler_config, family)
            schedulers.check_steps(sched, steps)
            for other in also_steps or ():
                schedulers.check_steps(sched, int(other))
        sampler, schedule_type = schedulers.describe(sched, steps)
        sched_config = schedulers.jsonable_config(sched)
        accepted = set(inspect.signature(type(pipe).__call__).parameters)
        warnings = []
        if family in _CLIP_FAMILIES:
            texts = []
            for p in dict.fromkeys(prompts):
                texts.append(("prompt", p))
            for p in dict.fromkeys(negatives):
                texts.append(("negative prompt", p))
            warnings = _long_prompt_warnings(pipe, texts)

        loras = lora.describe(entry)
        threads = int(torch.get_num_threads())
        from . import BLAS as blas
        versions = pipeline.versions()
        versions = {k: versions.get(k) for k in
                    ("python", "torch", "diffusers", "transformers", "peft", "accelerate")}

        default_sched = pipe.scheduler
        results = []
        pipe.scheduler = sched
        try:
            for i in range(n):
                # A fresh copy for each image: a scheduler keeps state between steps.
                generator = torch.Generator(device="cpu").manual_seed(seeds[i])
                if i > 0:
                    with pipeline.quiet_logs():
                        sched = type(sched).from_config(sched.config)
                pipe.scheduler = _with_generator(sched, generator)
                kw = {"prompt": prompts[i], "negative_prompt": negatives[i],
                      "num_inference_steps": steps, "guidance_scale": float(guidance_scale),
                      "generator": generator,
                      "output_type": "pil", "num_images_per_prompt": 1}
                prompt_3 = None
                if family == "sd3":
                    # T5 reads up to 256 tokens: give it the full prompt.
                    prompt_3 = prompts[i]
                    kw["prompt_3"] = prompt_3
                    kw["negative_prompt_3"] = negatives[i]
                # SD and SDXL img2img take the input's size and no width/height
                # (dropped below); SD3's would fall back to its native square.
                kw["width"], kw["height"] = width, height
                if task != "txt2img":
                    kw["image"] = init
                    kw["strength"] = strength
                if task == "inpaint":
                    kw["mask_image"] = mask_img
                if clip_skip is not None:
                    kw["clip_skip"] = int(clip_skip)
                if callback is not None:
                    kw["callback_on_step_end"] = _step_callback(callback, i + 1, steps)
                kw = {k: v for k, v in kw.items() if k in accepted}
                # Quiet: diffusers' per-call notices (truncated prompts, which
                # `warnings` reports in R's terms; scheduler adjustments).
                with pipeline.quiet_logs(), _no_silent_recompile_fallback(info["optimize"]):
                    out = pipe(**kw).images[0]
                if out.size != (width, height):
                    out = out.resize((width, height), resample=_lanczos())
                if task == "inpaint" and keep_unmasked:
                    out = _composite(init, out, mask_img)
                images.save_png(out, out_paths[i])
                meta = {
                    "task": task, "prompt": prompts[i], "negative_prompt": negatives[i],
                    "prompt_3": prompt_3, "seed": str(seeds[i]), "steps": steps,
                    "width": width, "height": height, "guidance_scale": float(guidance_scale),
                    "strength": strength if task != "txt2img" else None,
                    "clip_skip": None if clip_skip is None else int(clip_skip),
                    "model": model, "model_id": info["model_id"],
                    "model_source": info["source"], "model_revision": info["revision"],
                    "model_variant": info["variant"], "model_config": info["config"],
                    "model_config_revision": info.get("config_revision"),
                    "family": family, "pipeline_class": type(pipe).__name__,
                    "scheduler": type(sched).__name__, "scheduler_config": sched_config,
                    "sampler": sampler, "schedule_type": schedule_type,
                    "dtype": info["dtype"], "device": info["device"],
                    "generator_device": "cpu", "optimize": info["optimize"],
                    "torch_threads": threads, "blas": blas, "init_image_sha256": init_hash,
                    "mask_sha256": mask_hash,
                    "keep_unmasked": bool(keep_unmasked) if task == "inpaint" else None,
                    "loras": loras, "versions": versions,
                    "pixel_sha256": images.pixel_hash(out),
                }
                result = {"path": out_paths[i], "meta": meta, "warnings": list(warnings)}
                results.append(result)
                if callback is not None:
                    callback(int(i + 1), result=result)
        finally:
            pipe.scheduler = default_sched
    return results


@contextlib.contextmanager
def _no_silent_recompile_fallback(optimize):
    """A compiled denoiser compiles again for every new input shape (image
    size, batch); past torch's recompile limit dynamo would run it
    uncompiled, quietly, giving other pixels than the recorded
    "bf16-compile" mode would: an error instead."""
    if optimize != "bf16-compile":
        yield
        return
    import torch._dynamo
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        try:
            yield
        except torch._dynamo.exc.FailOnRecompileLimitHit as e:
            raise InputError(
                "This bf16-compile model was compiled for %d image sizes or batch shapes "
                "already, torch's limit; free it with sd_free() to compile it again, or "
                "use optimize = \"bf16\"." % torch._dynamo.config.recompile_limit) from e


# Usual settings per family for models without a preset: (steps, guidance).
_FAMILY_DEFAULTS = {"sd15": (30, 7.5), "sdxl": (30, 5.0), "sd3": (28, 7.0)}


def _size_factor(pipe, family):
    """What width and height must be multiples of: the VAE's scale factor,
    times the transformer's patch size for SD3 (2 for SD3 Medium), and at
    least 8, which the SD and SDXL pipelines insist on whatever the VAE."""
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    if family == "sd3":
        factor *= int(getattr(pipe.transformer.config, "patch_size", 1))
    return max(8, factor)


def _steps_run(family, steps, strength):
    """How many steps diffusers' img2img and inpaint pipelines run: SD's and
    SDXL's int(steps * strength); SD3's skip int(steps - steps * strength)
    (4 steps at strength 0.2: 1 step, not 0)."""
    if family == "sd3":
        return steps - int(max(steps - steps * strength, 0))
    return min(int(steps * strength), steps)


def _max_size(pipe, family):
    """The largest side an SD3 transformer takes: its positional embedding
    covers pos_embed_max_size patches (192 for SD3 Medium: 3072 pixels);
    None where there is no such limit."""
    if family != "sd3":
        return None
    config = getattr(getattr(pipe, "transformer", None), "config", None)
    cap = getattr(config, "pos_embed_max_size", None)
    if cap is None:
        return None
    return int(cap) * int(getattr(config, "patch_size", 1)) * int(getattr(pipe, "vae_scale_factor", 8))


def _native_size(pipe):
    """The image size a pipeline makes when not told: its latent sample size
    times the VAE's scale factor (512 for SD 1.5, 1024 for SDXL and SD3)."""
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        # `is None`, not `or`: a torch.compile wrapper (bf16-compile) raises
        # on bool().
        denoiser = getattr(pipe, "unet", None)
        if denoiser is None:
            denoiser = getattr(pipe, "transformer", None)
        sample = getattr(denoiser.config, "sample_size", 64)
    if isinstance(sample, (tuple, list)):
        sample = sample[0]
    return int(sample) * factor


def _with_generator(sched, generator):
    """Make `sched.step` draw its noise from the image's generator when the
    pipeline calls it without one: SD3's pipelines do, so a stochastic
    scheduler (FlowMatchLCM, stochastic_sampling) drew from torch's global
    random state and the same seed gave other pixels on every call. The SD
    and SDXL pipelines pass this same generator already."""
    import functools
    step = sched.step
    if "generator" not in inspect.signature(step).parameters:
        return sched

    @functools.wraps(step)
    def seeded_step(*args, **kwargs):
        if kwargs.get("generator") is None:
            kwargs["generator"] = generator
        return step(*args, **kwargs)
    sched.step = seeded_step
    return sched


def _lanczos():
    from PIL import Image
    return Image.Resampling.LANCZOS


def _step_callback(callback, image_index, steps):
    def on_step_end(pipe, step, timestep, callback_kwargs):
        total = int(getattr(pipe, "num_timesteps", None) or steps)
        # Plain ints: reticulate gives R integers, and an R error or interrupt
        # raised in the callback propagates out of the pipeline call.
        callback(int(image_index), int(step) + 1, total)
        return callback_kwargs
    return on_step_end


def _composite(orig, gen, mask):
    """orig outside the mask, gen inside: out = orig*(1-m) + gen*m, m = mask/255,
    so pixels where the mask is 0 are exactly the input's."""
    import numpy as np
    from PIL import Image
    o = np.asarray(orig.convert("RGB"), dtype=np.float64)
    g = np.asarray(gen.convert("RGB"), dtype=np.float64)
    m = np.asarray(mask.convert("L"), dtype=np.float64)[..., None] / 255.0
    out = np.rint(o * (1.0 - m) + g * m).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")
