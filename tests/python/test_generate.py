"""Generation: reproducibility, batches, tasks, callbacks, metadata, errors."""

import importlib
import json

import numpy as np
import pytest
from PIL import Image

from rdiffusers_py import pipeline
from rdiffusers_py.errors import InputError

META_KEYS = {
    "task", "prompt", "negative_prompt", "prompt_3", "seed", "steps", "width", "height",
    "guidance_scale", "strength", "clip_skip", "model", "model_id", "model_source",
    "model_revision", "model_variant", "model_config", "model_config_revision", "family", "pipeline_class", "scheduler", "scheduler_config", "sampler",
    "schedule_type", "dtype", "device", "generator_device", "optimize", "torch_threads", "blas",
    "init_image_sha256", "mask_sha256", "keep_unmasked", "loras", "versions", "pixel_sha256",
}


def sha(res, i=0):
    return res[i]["meta"]["pixel_sha256"]


def plain(x):
    """Only str, bool, float, int < 2^31, None, list, dict cross to R."""
    if isinstance(x, dict):
        return all(isinstance(k, str) and plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(plain(v) for v in x)
    if isinstance(x, bool) or x is None or isinstance(x, (str, float)):
        return True
    return isinstance(x, int) and -2 ** 31 < x < 2 ** 31


def test_same_seed_same_pixels_other_seed_other_pixels(gen, api):
    a, b, c = gen(seeds=["1"]), gen(seeds=["1"]), gen(seeds=["2"])
    assert sha(a) == sha(b)
    assert sha(a) != sha(c)
    # The hash is of the file's decoded pixels, and the file has no text chunks.
    assert api.pixel_hash(a[0]["path"]) == sha(a)
    with Image.open(a[0]["path"]) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
        assert not getattr(im, "text", {})


def test_largest_seed_works_and_is_kept_as_text(gen):
    top = str(2 ** 64 - 1)
    res = gen(seeds=[top])
    assert res[0]["meta"]["seed"] == top
    assert sha(gen(seeds=[top])) == sha(res)
    with pytest.raises(InputError, match="seed"):
        gen(seeds=[str(2 ** 64)])


def test_seeds_are_plain_digits_or_ints():
    generate = importlib.import_module("rdiffusers_py.generate")
    assert generate._seed("007") == 7
    assert generate._seed(42) == 42
    for bad in ("1_000", " 42\n", "\u0664\u0662", "-1", "4.0", 4.0, True, None):
        with pytest.raises(InputError, match="seed"):
            generate._seed(bad)


def test_batch_image_equals_generating_it_alone(gen):
    batch = gen(seeds=["5", "6", "7"])
    alone = gen(seeds=["6"])
    assert sha(batch, 1) == sha(alone)
    assert len({sha(batch, i) for i in range(3)}) == 3


def test_meta_has_every_entry_and_is_plain_data(gen):
    res = gen(seeds=["3"], negative_prompt="blurry", clip_skip=1)
    meta = res[0]["meta"]
    assert set(meta) == META_KEYS
    assert plain(res[0])
    json.dumps(res)
    assert meta["model"] == "tiny" and meta["model_source"] == "tiny"
    assert meta["scheduler"] == "DDIMScheduler"
    assert meta["scheduler_config"]["_class_name"] == "DDIMScheduler"
    assert meta["sampler"] == "DDIM"
    assert meta["clip_skip"] == 1 and meta["negative_prompt"] == "blurry"
    assert meta["generator_device"] == "cpu" and meta["torch_threads"] == 1
    assert meta["blas"] == "torch"  # plain Python: no host BLAS
    assert res[0]["warnings"] == []
    # clip_skip reaches the text encoder (transformers 5 needed a shim).
    assert sha(gen(seeds=["3"], negative_prompt="blurry")) != sha(res)


def test_scheduler_per_call_does_not_leak_and_config_reproduces(gen, cache_dir):
    entry = pipeline.get_entry("tiny", cache_dir=cache_dir)
    default = entry.pipe.scheduler
    base = gen(seeds=["4"])
    other = gen(seeds=["4"], scheduler="DPM++ 2M Karras")
    assert entry.pipe.scheduler is default
    assert type(entry.task("img2img").scheduler).__name__ == "DDIMScheduler"
    assert sha(base) != sha(other)
    assert sha(gen(seeds=["4"])) == sha(base)
    meta = other[0]["meta"]
    assert (meta["sampler"], meta["schedule_type"]) == ("DPM++ 2M", "Karras")
    again = gen(seeds=["4"], scheduler=meta["scheduler"], scheduler_config=meta["scheduler_config"])
    assert sha(again) == sha(other)


def test_long_prompt_warns_on_clip_models(gen, cache_dir):
    res = gen(prompt=" ".join(["word"] * 100))
    assert len(res[0]["warnings"]) == 1 and "77" in res[0]["warnings"][0]
    # A prompt that, with the start and end tokens, fills CLIP's 77 exactly
    # is read whole; one token more is cut off.
    tok = pipeline.get_entry("tiny", cache_dir=cache_dir).pipe.tokenizer

    def tokens(text):
        return len(tok(text, truncation=False, verbose=False)["input_ids"])
    words = ["a"]
    while tokens(" ".join(words)) < 77:
        words.append("a")
    assert tokens(" ".join(words)) == 77
    assert gen(prompt=" ".join(words))[0]["warnings"] == []
    assert len(gen(prompt=" ".join(words + ["a"]))[0]["warnings"]) == 1
    # The negative prompt is checked too.
    neg = gen(negative_prompt=" ".join(["word"] * 100))[0]["warnings"]
    assert len(neg) == 1 and "negative prompt" in neg[0]


def test_impossible_strength_and_sizes_are_input_errors(gen, tmp_path):
    first = gen()
    with pytest.raises(InputError, match="strength"):
        gen(task="img2img", image=first[0]["path"], strength=1.5)
    with pytest.raises(InputError, match="width and height"):
        gen(height=0)
    # An input narrower than the model's factor is widened to it.
    narrow = tmp_path / "narrow.png"
    Image.new("RGB", (4, 16), (200, 10, 10)).save(narrow)
    res = gen(task="img2img", image=str(narrow), width=None, height=None, strength=0.5)
    assert (res[0]["meta"]["width"], res[0]["meta"]["height"]) == (8, 16)


def test_sd3_sends_full_prompt_to_t5(gen):
    long = " ".join(["word"] * 100)
    res = gen(model="tiny-sd3", prompt=long, seeds=["1"])
    meta = res[0]["meta"]
    assert meta["prompt_3"] == long and meta["family"] == "sd3"
    assert meta["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert res[0]["warnings"] == []
    with pytest.raises(InputError, match="flow-matching"):
        gen(model="tiny-sd3", scheduler="DPM++ 2M Karras")


def test_stochastic_sd3_scheduler_follows_the_seed_not_global_state(gen):
    # StableDiffusion3Pipeline calls scheduler.step() without a generator;
    # FlowMatchLCM then drew from torch's global RNG.
    import torch
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    a = gen(model="tiny-sd3", scheduler="LCM", seeds=["7"])
    assert torch.equal(torch.rand(3), want)         # global state not consumed
    torch.manual_seed(123)
    b = gen(model="tiny-sd3", scheduler="LCM", seeds=["7"])
    assert a[0]["meta"]["scheduler"] == "FlowMatchLCMScheduler"
    assert sha(a) == sha(b)
    assert sha(gen(model="tiny-sd3", scheduler="LCM", seeds=["8"])) != sha(a)


def test_sdxl_generates_deterministically(gen):
    a = gen(model="tiny-sdxl", seeds=["9"])
    assert sha(a) == sha(gen(model="tiny-sdxl", seeds=["9"]))
    assert a[0]["meta"]["pipeline_class"] == "StableDiffusionXLPipeline"


@pytest.fixture
def picture(tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "in.png")
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), "RGB").save(path)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 255
    mpath = str(tmp_path / "mask.png")
    Image.fromarray(mask, "L").save(mpath)
    return path, mpath, mask


def test_img2img_resizes_and_records_input(gen, api, picture):
    path, _, _ = picture
    res = gen(task="img2img", image=path, strength=0.5)
    meta = res[0]["meta"]
    assert meta["pipeline_class"] == "StableDiffusionImg2ImgPipeline"
    assert (meta["width"], meta["height"], meta["strength"]) == (64, 64, 0.5)
    assert meta["init_image_sha256"] == api.pixel_hash(path)
    assert sha(gen(task="img2img", image=path, strength=0.5)) == sha(res)
    assert sha(gen(task="img2img", image=path, strength=1.0)) != sha(res)


@pytest.mark.parametrize("model", ["tiny", "tiny-sd3"])
def test_img2img_size_defaults_to_the_input_rounded_down(gen, tmp_path, model):
    path = str(tmp_path / "odd.png")
    Image.new("RGB", (77, 45), (90, 120, 200)).save(path)
    res = gen(model=model, task="img2img", image=path, strength=0.5, width=None, height=None)
    assert (res[0]["meta"]["width"], res[0]["meta"]["height"]) == (72, 40)
    assert Image.open(res[0]["path"]).size == (72, 40)


@pytest.mark.parametrize("model", ["tiny", "tiny-sdxl", "tiny-sd3"])
def test_img2img_runs_at_the_recorded_size_not_the_models_default(gen, tmp_path, monkeypatch,
                                                                   model):
    """SD3's img2img pipeline takes width and height (SD's and SDXL's take
    the input's size): without them it squashed a 96 x 64 input into its
    native square and the result was resampled back, unlike what is recorded."""
    path = str(tmp_path / "wide.png")
    Image.new("RGB", (96, 64), (90, 120, 200)).save(path)
    generate = importlib.import_module("rdiffusers_py.generate")

    def no_resampling():
        raise AssertionError("the pipeline's output was resized")
    monkeypatch.setattr(generate, "_lanczos", no_resampling)
    for task in ("img2img", "inpaint"):
        kw = {"mask": path} if task == "inpaint" else {}
        res = gen(model=model, task=task, image=path, strength=0.5, width=None, height=None, **kw)
        assert (res[0]["meta"]["width"], res[0]["meta"]["height"]) == (96, 64)
        assert Image.open(res[0]["path"]).size == (96, 64)


def test_sd3_sizes_past_its_positional_embedding_are_input_errors(gen):
    """diffusers raised a bare ValueError from inside the transformer."""
    pipe = pipeline.get_entry("tiny-sd3").pipe
    generate = importlib.import_module("rdiffusers_py.generate")
    limit = generate._max_size(pipe, "sd3")
    config = pipe.transformer.config
    assert limit == config.pos_embed_max_size * config.patch_size * pipe.vae_scale_factor
    assert generate._max_size(pipe, "sd15") is None
    res = gen(model="tiny-sd3", width=limit, height=16)
    assert res[0]["meta"]["width"] == limit
    with pytest.raises(InputError, match="at most %d" % limit):
        gen(model="tiny-sd3", width=16, height=limit + 16)


def test_sizes_are_multiples_of_the_vae_factor_and_sd3_patches():
    from types import SimpleNamespace as NS
    generate = importlib.import_module("rdiffusers_py.generate")
    patches = NS(vae_scale_factor=8, transformer=NS(config=NS(patch_size=2)))
    assert generate._size_factor(patches, "sd3") == 16
    assert generate._size_factor(patches, "sd15") == 8
    assert generate._size_factor(NS(vae_scale_factor=4), "sdxl") == 8


def test_input_hash_is_of_the_pixels_used_alpha_included(gen, api, tmp_path):
    """Same RGB values, opaque vs transparent: the transparent one becomes
    white before generation, so its hash (which sd_reproduce() checks) must
    differ too."""
    rgb = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hashes, pixels = [], []
    for alpha in (255, 0):
        rgba = np.dstack([rgb, np.full((64, 64), alpha, np.uint8)])
        path = str(tmp_path / ("a%d.png" % alpha))
        Image.fromarray(rgba, "RGBA").save(path)
        res = gen(task="img2img", image=path, strength=0.5)
        assert res[0]["meta"]["init_image_sha256"] == api.pixel_hash(path)
        hashes.append(api.pixel_hash(path))
        pixels.append(sha(res))
    assert pixels[0] != pixels[1]
    assert hashes[0] != hashes[1]


def test_inpaint_keeps_unmasked_pixels_exactly(gen, picture):
    path, mpath, mask = picture
    res = gen(task="inpaint", image=path, mask=mpath, strength=1.0)
    out = np.asarray(Image.open(res[0]["path"]).convert("RGB"))
    orig = np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
    keep = mask == 0
    assert np.array_equal(out[keep], orig[keep])
    assert not np.array_equal(out[~keep], orig[~keep])
    assert res[0]["meta"]["keep_unmasked"] is True and res[0]["meta"]["mask_sha256"]
    raw = gen(task="inpaint", image=path, mask=mpath, keep_unmasked=False)
    assert not np.array_equal(np.asarray(Image.open(raw[0]["path"]))[keep], orig[keep])


@pytest.mark.parametrize("model", ["tiny", "tiny-sdxl", "tiny-sd3"])
def test_every_task_runs_in_bf16_and_keeps_the_vae_in_bf16(gen, cache_dir, picture, model):
    # SDXL's img2img / inpaint move a force_upcast VAE to float32 around
    # encode(); under the bf16 hooks that failed and broke later calls.
    import torch
    path, mpath, _ = picture
    kw = dict(model=model, optimize="bf16", seeds=["5"])
    for task, extra in (("img2img", {"image": path, "strength": 0.5}),
                        ("inpaint", {"image": path, "mask": mpath}),
                        ("txt2img", {})):
        a = gen(task=task, **kw, **extra)
        assert a[0]["meta"]["optimize"] == "bf16"
        assert sha(gen(task=task, **kw, **extra)) == sha(a), task
    entry = pipeline.get_entry(model, optimize="bf16", cache_dir=cache_dir)
    assert next(entry.pipe.vae.encoder.parameters()).dtype == torch.bfloat16
    assert next(entry.pipe.vae.decoder.parameters()).dtype == torch.bfloat16


def test_16_bit_grey_inputs_are_scaled_not_clipped(tmp_path):
    from rdiffusers_py import images
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    path = str(tmp_path / "grey16.png")
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    want = (ramp >> 8).astype(np.uint8)
    assert np.array_equal(np.asarray(images.load_mask(path)), want)
    assert np.array_equal(np.asarray(images.load_image(path))[..., 0], want)
    # Pillow's own convert() clips: almost the whole ramp would be white.
    assert (np.asarray(Image.open(path).convert("L")) == 255).mean() > 0.9
    assert images.pixel_hash(path) == images.pixel_hash(Image.fromarray(want, "L"))


def test_a_coloured_mask_hashes_the_same_when_checked_again(gen, api, picture, tmp_path):
    # Generation records the hash of the mask as read (grey); reproduction
    # must hash the file the same way, not as an RGB picture.
    path, _, mask = picture
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    rgb[mask > 0] = (255, 40, 0)                   # red strokes
    mpath = str(tmp_path / "red-mask.png")
    Image.fromarray(rgb, "RGB").save(mpath)
    res = gen(task="inpaint", image=path, mask=mpath)
    assert res[0]["meta"]["mask_sha256"] == api.pixel_hash(mpath, "mask")
    assert api.pixel_hash(mpath, "mask") != api.pixel_hash(mpath)
    assert res[0]["meta"]["init_image_sha256"] == api.pixel_hash(path, "image")


def test_callback_gets_ints_and_errors_leave_pipeline_usable(gen, cache_dir):
    calls = []
    done = []

    def cb(i, s=None, t=None, result=None):
        if result is None:
            calls.append((i, s, t))
        else:
            done.append((i, result["meta"]["seed"]))

    gen(seeds=["1", "2"], callback=cb)
    assert calls == [(1, 1, 2), (1, 2, 2), (2, 1, 2), (2, 2, 2)]
    assert done == [(1, "1"), (2, "2")]

    class Interrupt(Exception):
        pass

    def stop(i, s=None, t=None, result=None):
        raise Interrupt()

    entry = pipeline.get_entry("tiny", cache_dir=cache_dir)
    default = entry.pipe.scheduler
    with pytest.raises(Interrupt):
        gen(callback=stop, scheduler="Euler a")
    assert entry.lock.acquire(blocking=False)
    entry.lock.release()
    assert entry.pipe.scheduler is default
    assert sha(gen(seeds=["1"])) == sha(gen(seeds=["1"]))


def test_callback_gets_each_image_once_its_file_is_written(gen, tmp_path):
    import os
    seen = []

    def pngs():
        return sorted(f for f in os.listdir(tmp_path) if f.endswith(".png"))

    def on_image(i, step=None, total=None, result=None):
        if result is None:
            return
        # The file is complete when R is told; later images do not exist yet.
        assert os.path.getsize(result["path"]) > 0
        seen.append((result["meta"]["seed"], os.path.basename(result["path"]), pngs()))

    out = gen(seeds=["1", "2", "3"], callback=on_image)
    names = [os.path.basename(r["path"]) for r in out]
    assert [s for s, _, _ in seen] == ["1", "2", "3"]
    assert [n for _, n, _ in seen] == names
    assert [files for _, _, files in seen] == [names[:1], names[:2], names[:3]]

    # A failure in it (R could not write the file) ends the batch there.
    def fail(i, step=None, total=None, result=None):
        if result is not None:
            raise OSError("disk full")

    before = pngs()
    with pytest.raises(OSError, match="disk full"):
        gen(seeds=["1", "2"], callback=fail)
    assert len(pngs()) == len(before) + 1


def test_input_errors_are_classed(gen, picture):
    with pytest.raises(InputError, match="width and height"):
        gen(width=60)
    with pytest.raises(InputError, match="steps"):
        gen(steps=0)
    with pytest.raises(InputError, match="scheduler"):
        gen(scheduler="Eular")
    with pytest.raises(InputError, match="mask"):
        gen(task="inpaint", image=picture[0])
    with pytest.raises(InputError, match="image"):
        gen(task="img2img", image="/no/such/file.png")
    with pytest.raises(InputError, match="task must be one of txt2img, img2img, inpaint"):
        gen(task="outpaint")


def test_unset_settings_take_family_defaults_and_native_size(gen):
    # Models without a preset (hub ids, directories, files) arrive with None.
    meta = gen(seeds=["4"], width=None, height=None, steps=None, guidance_scale=None)[0]["meta"]
    assert (meta["width"], meta["height"]) == (64, 64)  # tiny: sample 32 x VAE factor 2
    assert meta["steps"] == 30 and meta["guidance_scale"] == 7.5
    again = gen(seeds=["4"], width=64, height=64, steps=30, guidance_scale=7.5)[0]["meta"]
    assert again["pixel_sha256"] == meta["pixel_sha256"]


def test_settings_the_model_cannot_run_are_input_errors(gen, tmp_path):
    from rdiffusers_py.errors import InputError
    first = gen(seeds=["1"])[0]
    with pytest.raises(InputError, match="steps x strength"):
        gen(task="img2img", image=first["path"], steps=2, strength=0.3)
    # SD3's pipelines round the other way: 4 x 0.2 runs one step there, where
    # the guard refused it.
    generate = importlib.import_module("rdiffusers_py.generate")
    assert generate._steps_run("sd15", 4, 0.2) == 0
    assert generate._steps_run("sd3", 4, 0.2) == 1
    assert generate._steps_run("sd3", 10, 0.75) == 8 and generate._steps_run("sd15", 10, 0.75) == 7
    sd3 = gen(model="tiny-sd3", task="img2img", image=first["path"], steps=4, strength=0.2)
    assert sd3[0]["meta"]["steps"] == 4
    assert generate._steps_run("sd3", 4, 0.01) == 1  # any strength > 0 runs one
    with pytest.raises(InputError, match="clip_skip"):
        gen(clip_skip=5)  # the tiny text encoder has 2 layers
    # Skipping every layer would leave the token embeddings: refused too.
    with pytest.raises(InputError, match="between 0 and 1"):
        gen(clip_skip=2)


def test_meta_records_the_model_as_this_call_named_it(gen, api, cache_dir):
    path = api.tiny_model("tiny", cache_dir)
    a = gen(model=path, seeds=["1"])[0]["meta"]
    b = gen(model=path + "/", seeds=["1"])[0]["meta"]
    assert (a["model"], b["model"]) == (path, path + "/")
    assert a["pixel_sha256"] == b["pixel_sha256"]


def test_a_jpegs_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways with orientation 6 is used upright, as
    viewers show it (and as R reads its size); PNGs are used as stored."""
    from rdiffusers_py import images
    a = np.zeros((32, 64, 3), np.uint8)
    a[:, :8] = 255                      # stored: a white band on the left
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / "phone.jpg")
    im.save(path, exif=exif.tobytes(), quality=100)
    up = np.asarray(images.load_image(path))
    assert up.shape == (64, 32, 3)
    assert up[:6].mean() > 200 and up[10:].mean() < 50   # upright: the band on top
    png = str(tmp_path / "p.png")
    im.save(png, exif=exif.tobytes())
    assert images.load_image(png).size == (64, 32)


def test_a_masks_transparency_is_ignored(tmp_path):
    """A mask painted in white on a transparent layer: what is not painted
    is kept (transparent black reads as black), unlike an image's
    transparency, which is put on white."""
    import numpy as np
    from rdiffusers_py import images
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:4, 2:4] = 255  # opaque white stroke
    path = str(tmp_path / "layer.png")
    Image.fromarray(rgba, "RGBA").save(path)
    mask = np.asarray(images.load_mask(path))
    assert mask[2, 2] == 255 and mask[0, 0] == 0
    assert np.asarray(images.load_image(path))[0, 0].tolist() == [255, 255, 255]


def test_a_failed_call_does_not_keep_the_pipeline_alive(api, gen, cache_dir, tmp_path):
    # R (reticulate) holds on to the last exception: its traceback must not
    # keep the pipeline in memory once the model is freed.
    import gc
    import shutil
    import weakref
    from rdiffusers_py import pipeline
    from rdiffusers_py.errors import InputError
    model = str(tmp_path / "model")
    shutil.copytree(api.tiny_model("tiny", cache_dir), model)
    pipe = weakref.ref(pipeline.get_entry(model).pipe)
    try:
        gen(model=model, steps=5000)
    except InputError as e:
        held = e
    assert held.__traceback__ is not None
    api.free_model(model)
    gc.collect()
    assert pipe() is None


def test_an_image_that_cannot_be_written_is_a_file_error(tmp_path):
    from PIL import Image
    from rdiffusers_py import images
    from rdiffusers_py.errors import FileError
    im = Image.new("RGB", (8, 8))
    with pytest.raises(FileError, match="does not exist"):
        images.save_png(im, str(tmp_path / "gone" / "x.png"))
    # A folder where the file should go: the OS refuses the write.
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(FileError, match="Cannot write"):
        images.save_png(im, str(tmp_path / "taken.png"))


def test_inputs_16_bit_i_mode_and_palette_transparency(tmp_path):
    from rdiffusers_py import images
    # Pillow opens some 16-bit greys as mode "I": scaled to 8 bits, not clipped.
    wide = Image.new("I", (2, 2), 40000)
    assert images._to_8bit(wide).getpixel((0, 0)) == 40000 >> 8
    # A palette image's transparent entry is put on white, like alpha.
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    path = tmp_path / "pal.png"
    pal.save(path, transparency=1)
    rgb = images.load_image(str(path))
    assert rgb.getpixel((0, 0)) == (255, 0, 0)
    assert rgb.getpixel((1, 0)) == (255, 255, 255)
