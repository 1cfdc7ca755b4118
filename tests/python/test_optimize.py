"""optimize.resolve() / apply(): the fast-path modes.

apply() is exercised on the tiny SD1.5/SDXL/SD3 pipelines: a mode must keep
determinism (same seed twice -> identical pixels), drift little from "none",
and leave the pipeline's float32 interface (latents, scheduler) untouched.
"""

import copy
import pickle

import numpy as np
import pytest
import torch

from rdiffusers_py import optimize as opt
from rdiffusers_py.errors import InputError


# --- resolve ------------------------------------------------------------------

def test_auto_on_cpu_follows_native_bf16(monkeypatch):
    monkeypatch.setattr(opt, "cpu_has_native_bf16", lambda: True)
    assert opt.resolve("auto", "cpu", "float32") == "bf16"
    assert opt.resolve(None, "cpu", "float32") == "bf16"
    monkeypatch.setattr(opt, "cpu_has_native_bf16", lambda: False)
    assert opt.resolve("auto", "cpu", "float32") == "none"


def test_words_for_off_and_on(monkeypatch):
    monkeypatch.setattr(opt, "cpu_has_native_bf16", lambda: True)
    for off in ("none", "off", "false", "False", "default", False):
        assert opt.resolve(off, "cpu", "float32") == "none", off
    for on in ("auto", "true", True):
        assert opt.resolve(on, "cpu", "float32") == "bf16", on


def test_auto_keeps_a_half_dtype_the_user_chose(monkeypatch):
    monkeypatch.setattr(opt, "cpu_has_native_bf16", lambda: True)
    assert opt.resolve("auto", "cpu", "bfloat16") == "none"
    assert opt.resolve("bf16", "cpu", "bfloat16") == "none"
    assert opt.resolve("auto", "cuda", "float16") == "channels_last"
    assert opt.resolve("auto", "cuda:1", "bfloat16") == "channels_last"


def test_auto_on_gpus(monkeypatch):
    monkeypatch.setattr(opt, "_cuda_bf16", lambda: True)
    assert opt.resolve("auto", "cuda", "float32") == "bf16"
    monkeypatch.setattr(opt, "_cuda_bf16", lambda: False)
    assert opt.resolve("auto", "cuda", "float32") == "fp16"
    assert opt.resolve("auto", "mps", "float32") == "none"
    # Asked for by name on a GPU without bf16: an error, not a slow emulation.
    for mode in ("bf16", "bf16-compile"):
        with pytest.raises(InputError, match="bfloat16 support"):
            opt.resolve(mode, "cuda:0", "float32")
    assert opt.resolve("bf16", "cuda", "float16") == "channels_last"
    monkeypatch.setattr(opt, "_cuda_bf16", lambda: True)
    assert opt.resolve("bf16", "cuda", "float32") == "bf16"


def test_explicit_modes_and_aliases():
    for m in opt.MODES:
        if m != "fp16":
            assert opt.resolve(m, "cpu", "float32") == m
    assert opt.resolve("NONE", "cpu", "float32") == "none"
    assert opt.resolve(False, "cpu", "float32") == "none"
    assert opt.resolve("bfloat16", "cpu", "float32") == "bf16"
    assert opt.resolve("fp16", "cuda", "float32") == "fp16"
    # resolve() of a concrete mode is the mode itself, so the value written
    # to metadata rebuilds the same settings.
    for m in opt.MODES:
        if m != "fp16":
            assert opt.resolve(opt.resolve(m, "cpu", "float32"), "cpu", "float32") == m


def test_bad_modes_are_input_errors():
    with pytest.raises(InputError, match="optimize must be"):
        opt.resolve("turbo", "cpu", "float32")
    with pytest.raises(InputError, match="needs a GPU"):
        opt.resolve("fp16", "cpu", "float32")


# --- apply ----------------------------------------------------------------------

def _load(api, cache_dir, name="tiny"):
    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(api.tiny_model(name, cache_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(pipe, seed=3, **kw):
    args = dict(prompt="a red cat", num_inference_steps=2, width=64, height=64,
                guidance_scale=7.5, output_type="np")
    args.update(kw)
    with torch.no_grad():
        return pipe(generator=torch.Generator("cpu").manual_seed(seed), **args).images[0]


@pytest.mark.parametrize("name", ["tiny", "tiny-sdxl", "tiny-sd3"])
def test_bf16_is_deterministic_and_close_to_none(api, cache_dir, name):
    pipe = _load(api, cache_dir, name)
    ref = _run(pipe)
    assert opt.apply(pipe, "cpu", "float32", "none") == "none"
    assert np.array_equal(_run(pipe), ref)

    assert opt.apply(pipe, "cpu", "float32", "bf16") == "bf16"
    denoiser = opt._denoiser(pipe)
    assert next(denoiser.parameters()).dtype == torch.bfloat16
    assert next(pipe.vae.decoder.parameters()).dtype == torch.bfloat16
    a = _run(pipe)
    b = _run(pipe)
    assert np.array_equal(a, b)                    # deterministic
    assert not np.array_equal(a, ref)              # bf16 really ran
    # Random tiny models amplify rounding far more than trained ones; these
    # bounds still catch a broken cast (which gives noise or NaN).
    assert np.abs(a - ref).mean() < 0.01
    assert np.abs(a - ref).max() < 0.1
    assert _run(pipe, seed=4).tobytes() != a.tobytes()


def test_bf16_keeps_float32_latents_and_is_idempotent(api, cache_dir):
    pipe = _load(api, cache_dir)
    opt.apply(pipe, "cpu", "float32", "bf16")
    opt.apply(pipe, "cpu", "float32", "bf16")      # no double hooks
    assert len(pipe.unet._forward_pre_hooks) == 1
    with torch.no_grad():
        lat = pipe("a red cat", num_inference_steps=2, width=64, height=64,
                   generator=torch.Generator("cpu").manual_seed(1), output_type="latent").images
    assert lat.dtype == torch.float32


def test_bf16_survives_task_switch(api, cache_dir):
    from diffusers import AutoPipelineForImage2Image
    pipe = _load(api, cache_dir)
    opt.apply(pipe, "cpu", "float32", "bf16")
    i2i = AutoPipelineForImage2Image.from_pipe(pipe)
    init = np.full((64, 64, 3), 0.5, dtype=np.float32)
    from PIL import Image
    img = Image.fromarray((init * 255).astype("uint8"))
    a = _run(i2i, image=img, strength=0.6, width=None, height=None)
    b = _run(i2i, image=img, strength=0.6, width=None, height=None)
    assert np.array_equal(a, b)


def test_channels_last_changes_memory_format_only(api, cache_dir):
    pipe = _load(api, cache_dir)
    ref = _run(pipe)
    assert opt.apply(pipe, "cpu", "float32", "channels_last") == "channels_last"
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert next(pipe.unet.parameters()).dtype == torch.float32
    out = _run(pipe)
    assert np.array_equal(out, _run(pipe))
    assert np.abs(out - ref).max() < 1e-3


@pytest.mark.parametrize("name", ["tiny", "tiny-sd3"])
def test_bf16_passes_timesteps_unrounded(api, cache_dir, name):
    # Euler / flow-matching timesteps are fractional (964.55...); bf16 would
    # round them (to 964), so the denoiser must still see float32 timesteps.
    pipe = _load(api, cache_dir, name)
    if name == "tiny":
        from diffusers import EulerDiscreteScheduler
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    opt.apply(pipe, "cpu", "float32", "bf16")
    denoiser = pipe.unet if name == "tiny" else pipe.transformer
    seen = []

    def spy(mod, args, kwargs):
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        seen.append(t.clone())

    denoiser.register_forward_pre_hook(spy, with_kwargs=True)  # runs after ours
    _run(pipe, num_inference_steps=4)
    assert seen and all(t.dtype == torch.float32 for t in seen)
    # Exactly the scheduler's values (before the fix: bf16-rounded).
    sched = pipe.scheduler.timesteps.to(torch.float32)
    got = torch.stack([t.reshape(-1)[0] for t in seen])
    assert torch.equal(got, sched[:len(got)])


# --- pre-packed convolutions ------------------------------------------------------

@pytest.mark.parametrize("cfg", [dict(in_channels=8, out_channels=16, kernel_size=3, padding=1),
                                 dict(in_channels=8, out_channels=8, kernel_size=3, stride=2, padding=1),
                                 dict(in_channels=8, out_channels=4, kernel_size=1, bias=False)])
def test_packed_conv_matches_plain_conv_bit_for_bit(cfg):
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(**cfg).to(torch.bfloat16).to(memory_format=torch.channels_last)
    packed = copy.deepcopy(plain)
    assert opt.prepack_convs(packed) == 1
    x = torch.randn(2, 8, 12, 12).to(torch.bfloat16).to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = plain(x)
        out = packed(x)
        assert torch.equal(out, ref)
        if opt.cpu_has_native_bf16():
            assert packed._rdiffusers_pack.key is not None   # the packed path ran
        # A weight changed in place (version counter) or replaced is seen.
        plain.weight.mul_(0.5)
        packed.weight.mul_(0.5)
        assert torch.equal(packed(x), plain(x))
        new = torch.nn.Parameter(torch.randn_like(plain.weight))
        plain.weight, packed.weight = new, torch.nn.Parameter(new.detach().clone())
        assert torch.equal(packed(x), plain(x))
        # Another input shape packs again and is still exact.
        x2 = torch.randn(1, 8, 20, 20).to(torch.bfloat16)
        assert torch.equal(packed(x2), plain(x2))
    # pickle gives a working module that packs its own weight.
    clone = pickle.loads(pickle.dumps(packed))
    with torch.no_grad():
        assert torch.equal(clone(x), plain(x))
        # float32 takes the plain path.
        assert torch.equal(packed.float()(x.float()), plain.float()(x.float()))
    # Autograd works (plain path): the packed operator has no backward.
    xg = torch.randn(1, 8, 6, 6, requires_grad=True)
    packed(xg).sum().backward()
    assert xg.grad is not None and xg.grad.shape == xg.shape


@pytest.mark.skipif(not opt.cpu_has_native_bf16(),
                    reason="packed convolutions run only on CPUs with native bf16 (AVX512-BF16/AMX)")
def test_packed_path_runs_on_cpus_with_native_bf16():
    """What the tests above check only where it applies: that the packed
    operator, not the plain fallback, ran and gave the plain result."""
    from rdiffusers_py._packed_conv import PackedConv2d
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1).to(torch.bfloat16).to(
        memory_format=torch.channels_last)
    ref = copy.deepcopy(conv)
    assert opt.prepack_convs(conv) == 1 and isinstance(conv, PackedConv2d)
    x = torch.randn(2, 8, 12, 12).to(torch.bfloat16).to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(conv(x), ref(x))
    assert conv._rdiffusers_pack.key is not None
    assert not conv._rdiffusers_pack.failed


def test_packed_conv_made_under_inference_mode_runs():
    # Inference tensors have no version counter to key the pack on.
    with torch.inference_mode():
        conv = torch.nn.Conv2d(4, 4, 3, padding=1).to(torch.bfloat16)
        opt.prepack_convs(conv)
        x = torch.randn(1, 4, 8, 8).to(torch.bfloat16)
        assert torch.equal(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias,
                                                               padding=1))


def test_bf16_packs_convs_only_where_bf16_is_native(api, cache_dir, monkeypatch):
    from rdiffusers_py._packed_conv import PackedConv2d as cls
    monkeypatch.setattr(opt, "cpu_has_native_bf16", lambda: False)
    pipe = _load(api, cache_dir)
    opt.apply(pipe, "cpu", "float32", "bf16")
    assert not any(isinstance(m, cls) for m in pipe.unet.modules())

    monkeypatch.setattr(opt, "cpu_has_native_bf16", lambda: True)
    pipe = _load(api, cache_dir)
    opt.apply(pipe, "cpu", "float32", "bf16")
    convs = [m for m in list(pipe.unet.modules()) + list(pipe.vae.modules())
             if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(isinstance(m, cls) for m in convs)
    a = _run(pipe)
    # The same pipeline with every conv forced onto the plain path.
    for m in convs:
        m._rdiffusers_pack.failed = True
    b = _run(pipe)
    assert np.array_equal(a, b)
    # state_dict is untouched by the class change.
    assert all("_rdiffusers" not in k for k in pipe.unet.state_dict())


def test_packed_convs_follow_conv_loras(api, cache_dir, tmp_path, monkeypatch):
    # A LoRA on the ResNet convolutions wraps packed convs; loading, running
    # and unloading it must give what the plain convolutions give.
    from rdiffusers_py import lora
    from rdiffusers_py._packed_conv import PackedConv2d
    native = opt.cpu_has_native_bf16()
    monkeypatch.setattr(opt, "cpu_has_native_bf16", lambda: True)
    path = lora.make_test_lora(api.tiny_model("tiny", cache_dir),
                               str(tmp_path / "conv.safetensors"), target="unet_conv")
    pipe = _load(api, cache_dir)
    opt.apply(pipe, "cpu", "float32", "bf16")
    base = _run(pipe)
    pipe.load_lora_weights(path, adapter_name="conv")
    convs = [m for m in pipe.unet.modules() if isinstance(m, PackedConv2d)]
    assert convs
    with_lora = _run(pipe)
    if native:
        assert all(m._rdiffusers_pack.key is not None for m in convs)
    assert not np.array_equal(with_lora, base)
    for m in convs:
        m._rdiffusers_pack.failed = True
    assert np.array_equal(_run(pipe), with_lora)
    for m in convs:
        m._rdiffusers_pack.failed = False
    pipe.unload_lora_weights()
    assert all(isinstance(m, PackedConv2d) for m in convs)
    assert np.array_equal(_run(pipe), base)

    # Fusing edits weights through .data, invisible to the packs; the
    # package's unfuse (run before any unload) drops every pack.
    pipe.load_lora_weights(path, adapter_name="conv")
    _run(pipe)
    pipe.fuse_lora(components=["unet"])
    convs = [m for m in pipe.unet.modules() if isinstance(m, PackedConv2d)]
    if native:
        assert any(m._rdiffusers_pack.key is not None for m in convs)
    lora._unfuse(pipe)
    assert all(m._rdiffusers_pack.key is None for m in convs)


def test_bf16_compile_generates_reproducibly_and_refuses_loras(gen, api, cache_dir, tmp_path):
    # The compiled wrapper replaces pipe.unet: code that reads the denoiser
    # (native size, LoRA loading) must cope with it. Compiling takes ~45 s.
    from rdiffusers_py import lora, pipeline
    from rdiffusers_py.generate import _native_size
    a = gen(optimize="bf16-compile", width=None, height=None, seeds=["2"])
    meta = a[0]["meta"]
    assert meta["optimize"] == "bf16-compile"
    plain = pipeline.get_entry("tiny", optimize="none", cache_dir=cache_dir).pipe
    assert (meta["width"], meta["height"]) == (_native_size(plain),) * 2
    b = gen(optimize="bf16-compile", width=None, height=None, seeds=["2"])
    assert b[0]["meta"]["pixel_sha256"] == meta["pixel_sha256"]
    # Past torch's recompile limit (8; 1 here, so no second compile runs)
    # dynamo would run the UNet uncompiled, quietly: other pixels than a
    # fresh bf16-compile of that size, under the same recorded mode.
    import torch._dynamo
    with torch._dynamo.config.patch(recompile_limit=1):
        with pytest.raises(InputError, match="compiled for 1 image sizes"):
            gen(optimize="bf16-compile", width=meta["width"] + 8, height=meta["height"],
                seeds=["2"])
    assert not torch._dynamo.config.fail_on_recompile_limit_hit
    f = str(tmp_path / "style.safetensors")
    lora.make_test_lora(api.tiny_model("tiny", cache_dir), f)
    with pytest.raises(InputError, match="compiled model"):
        lora.load_lora("tiny", f, optimize="bf16-compile", cache_dir=cache_dir)
    assert lora.list_loras("tiny", optimize="bf16-compile", cache_dir=cache_dir) == []
