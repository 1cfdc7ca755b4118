"""Speed settings applied to a loaded pipeline (the `optimize` argument).

resolve(mode, device, dtype) turns the user's mode ("auto" or a name below)
into a concrete mode; it is part of the pipeline cache key.
apply(pipe, device, dtype, mode) changes the pipeline in place right after
loading and returns the concrete mode, which goes into image metadata as
`optimize`.  Passing that value back as `optimize` rebuilds the same settings,
so a reproduction runs the same arithmetic.

Modes
- "none": the pipeline exactly as diffusers loads it.
- "channels_last": UNet and VAE weights in channels-last memory format.
- "bf16": the denoiser (UNet / SD3 transformer) and the VAE run with bfloat16
  weights in channels-last memory format behind a float32 interface: inputs
  are cast to bf16 on the way in and outputs back to float32 on the way out,
  so the scheduler, the latents and the text encoders stay float32.  On CPUs
  with native bf16 (AVX512-BF16 / AMX) this is the fast path: one 512x512
  SD1.5 step costs about 4x less than float32 (see bench/README.md for
  figures and drift).  There the convolutions also keep their weights
  pre-packed in oneDNN's blocked layout (see _packed_conv.py): the same pixels,
  without re-laying out every weight on every call.
- "fp16": CUDA/MPS only: denoiser in float16 behind the same float32
  interface; the VAE stays float32 (the SD/SDXL VAE overflows in float16).
- "bf16-compile": "bf16" plus torch.compile() of the denoiser (inductor).
  Opt-in: the first call compiles for minutes, and every new image size
  compiles again.
- On CUDA, "bf16", "fp16" and "bf16-compile" also turn on VAE tiling, which
  only acts above the VAE's tile size (so large images fit in memory).
- "auto": "bf16" on a CPU with native bf16 matmul when the pipeline is
  float32; on CUDA "bf16" (GPUs with bf16) or "fp16" when the pipeline is
  float32, "channels_last" when it is already half precision; else "none".

Every mode is deterministic: the same call twice gives identical pixels
(nothing here depends on timing, autotuning or non-deterministic kernels).
"""

from .errors import InputError

__all__ = ["MODES", "resolve", "apply", "cpu_has_native_bf16", "prepack_convs", "unpack_convs"]

MODES = ("none", "channels_last", "bf16", "fp16", "bf16-compile")

_ALIASES = {None: "auto", "auto": "auto", "default": "none", "off": "none",
            "false": "none", "true": "auto", "bfloat16": "bf16", "float16": "fp16",
            "compile": "bf16-compile"}


def cpu_has_native_bf16():
    """True when this CPU multiplies bf16 matrices natively (AVX512-BF16 or
    AMX), which is what makes bf16 faster than float32 rather than slower."""
    import torch
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - private API; absent means "no"
        return False


def _cuda_bf16():
    import torch
    try:
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    except Exception:  # noqa: BLE001
        return False


def resolve(mode, device, dtype):
    """Turn `mode` into a concrete mode for this device ("cpu", "cuda",
    "cuda:1", "mps") and pipeline dtype ("float32", "float16", "bfloat16")."""
    if isinstance(mode, bool):
        mode = "auto" if mode else "none"
    if isinstance(mode, str):
        mode = mode.strip().lower()
    mode = _ALIASES.get(mode, mode)
    base = str(device or "cpu").split(":")[0]
    if mode == "auto":
        if dtype != "float32":
            # The user chose a half dtype: weights are already small; only
            # the memory format is left to gain, and only on GPUs.
            return "channels_last" if base == "cuda" else "none"
        if base == "cpu":
            return "bf16" if cpu_has_native_bf16() else "none"
        if base == "cuda":
            return "bf16" if _cuda_bf16() else "fp16"
        return "none"
    if mode not in MODES:
        raise InputError(
            "optimize must be \"auto\" or one of %s, not %r."
            % (", ".join('"%s"' % m for m in MODES), mode))
    if mode == "fp16" and base == "cpu":
        raise InputError("optimize = \"fp16\" needs a GPU; on the CPU use \"bf16\".")
    if mode in ("bf16", "bf16-compile") and base == "cuda" and dtype == "float32" \
            and not _cuda_bf16():
        # Older GPUs (before Ampere) emulate bf16 slowly or fail in kernels.
        raise InputError("optimize = \"%s\" needs a GPU with bfloat16 support; this one has "
                         "none: use \"fp16\" (what \"auto\" picks here)." % mode)
    if mode in ("bf16", "fp16", "bf16-compile") and dtype != "float32":
        # The weights are already half precision: casting again would only
        # change which half format is used.  Keep the user's dtype.
        return "channels_last" if base == "cuda" else "none"
    return mode


def apply(pipe, device, dtype, mode):
    """Apply concrete `mode` (from resolve()) to `pipe` in place; return the
    mode actually applied."""
    import torch

    mode = resolve(mode, device, dtype)
    base = str(device or "cpu").split(":")[0]
    if mode == "none":
        return mode
    denoiser = _denoiser(pipe)
    vae = getattr(pipe, "vae", None)
    if mode == "channels_last":
        _channels_last(denoiser, vae)
        return mode
    half = torch.float16 if mode == "fp16" else torch.bfloat16
    if denoiser is not None:
        _run_in(denoiser, half)
    if vae is not None and mode != "fp16":
        # The VAE runs in bf16 through its parts (encode/decode are methods,
        # not forward(), so the hooks go on the modules they call).
        for name in ("encoder", "decoder", "quant_conv", "post_quant_conv"):
            part = getattr(vae, name, None)
            if isinstance(part, torch.nn.Module):
                _run_in(part, half)
        # SDXL's VAE asks its img2img / inpaint pipelines to move it to
        # float32 around encode() (fp16 overflows there; bf16 has float32's
        # range): that would undo the bf16 weights behind the hooks and
        # break every later call. Tell them not to.
        if getattr(getattr(vae, "config", None), "force_upcast", False):
            vae.register_to_config(force_upcast=False)
    # channels_last: on CUDA, and on the CPU too since oneDNN's bf16
    # convolutions prefer it (a 512^2 SD1.5 step: 1.58 s vs 1.79 s, faster in
    # every repeat of bench/cpu_fastpath.py on a quiet machine).
    _channels_last(denoiser, vae)
    if base == "cpu" and mode == "bf16" and cpu_has_native_bf16():
        # (bf16-compile: freezing packs the weights inside the compiled graph.)
        prepack_convs(denoiser, vae)
    if base == "cuda" and vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    if mode == "bf16-compile" and denoiser is not None:
        _compile(pipe, denoiser)
    return mode


# --- helpers ------------------------------------------------------------------

def _denoiser(pipe):
    for name in ("unet", "transformer"):
        m = getattr(pipe, name, None)
        if m is not None:
            return m
    return None


def _channels_last(*modules):
    import torch
    for m in modules:
        if m is not None:
            m.to(memory_format=torch.channels_last)


def _cast(obj, src, dst, min_ndim=0):
    """Cast floating tensors of dtype `src` inside obj (tensor, tuple, list,
    dict, diffusers BaseOutput) to `dst`; leave everything else alone, and
    tensors with fewer than `min_ndim` dimensions too."""
    import torch
    if isinstance(obj, torch.Tensor):
        return obj.to(dst) if obj.dtype == src and obj.ndim >= min_ndim else obj
    if isinstance(obj, dict):
        # BaseOutput is an OrderedDict subclass whose fields are also
        # attributes; assigning through __setitem__ keeps both in sync.
        for k in list(obj.keys()):
            obj[k] = _cast(obj[k], src, dst, min_ndim)
        return obj
    if isinstance(obj, tuple):
        return type(obj)(_cast(o, src, dst, min_ndim) for o in obj) \
            if not hasattr(obj, "_fields") \
            else type(obj)(*(_cast(o, src, dst, min_ndim) for o in obj))
    if isinstance(obj, list):
        return [_cast(o, src, dst, min_ndim) for o in obj]
    return obj


def _run_in(module, half):
    """Give `module` half-precision weights behind a float32 interface:
    float32 inputs are cast to `half` before forward(), half outputs back to
    float32 after.  The pipeline around it never sees a half tensor, so the
    scheduler arithmetic and the latents keep float32 precision."""
    import torch
    if getattr(module, "_rdiffusers_half", None) == half:
        return
    # nn.Module.to, not diffusers' ModelMixin.to: the latter warns about
    # "modules to keep in float32" (an empty list for these models), and the
    # warning would reach the R console on every load.
    torch.nn.Module.to(module, half)
    f32 = torch.float32

    # Timesteps (0-d or 1-d) stay float32: bf16 would round 964.55 to 964.
    # The models embed them in float32 and cast the embedding themselves.
    def pre(mod, args, kwargs):
        return _cast(args, f32, half, min_ndim=2), _cast(kwargs, f32, half, min_ndim=2)

    def post(mod, args, kwargs, output):
        return _cast(output, half, f32)

    module.register_forward_pre_hook(pre, with_kwargs=True)
    module.register_forward_hook(post, with_kwargs=True)
    module._rdiffusers_half = half
    # `module.dtype` now reports the half dtype; diffusers reads it only to
    # pick the dtype of inputs it builds, which the pre-hook casts anyway.


def _compile(pipe, denoiser):
    import torch
    try:
        import torch._inductor.config as inductor_config
        # Freezing folds the (constant) weights into oneDNN-prepacked form,
        # which is most of what compile gains on CPU.
        inductor_config.freezing = True
    except Exception:  # noqa: BLE001
        pass
    compiled = torch.compile(denoiser, dynamic=False)
    # The hooks live on the original module and still run inside compiled
    # calls.  Swap the compiled wrapper in place of the denoiser.
    name = "unet" if getattr(pipe, "unet", None) is denoiser else "transformer"
    setattr(pipe, name, compiled)


# --- pre-packed convolution weights (CPU, bf16) -------------------------------
#
# In eager mode ATen's oneDNN convolution re-lays out its weight into oneDNN's
# blocked format on every call.  For the deep UNet blocks (1280 channels at
# 8x8 or 16x16) that copy costs more than the convolution itself: packing
# once makes a 512^2 SD1.5 step 10-13 % faster (256^2: 29 %).  torch.compile's freezing
# pass packs the weights once; _packed_conv.PackedConv2d does the same in
# eager mode with the operators that pass emits.  The result is bit-identical
# to the plain convolution (tests/python/test_optimize.py checks it), so
# images made with and without packing reproduce each other.
#
# Cost: a packed copy of each convolution weight (bf16; 1.2 GB for the 589M
# conv parameters of the SD1.5 UNet).  Peak memory does not move: loading the
# float32 checkpoint dominates it (a 512^2 SD1.5 job peaks at 5392 MiB with or
# without packing, 5516 MiB with optimize = "none").

def prepack_convs(*modules):
    """Turn the plain 2-D convolutions of `modules` into PackedConv2d in
    place (their class changes; parameters, state_dict and PEFT wrapping stay
    as they were).  Returns how many were converted."""
    import torch
    from ._packed_conv import PackCache, PackedConv2d
    n = 0
    for root in modules:
        if root is None:
            continue
        for m in root.modules():
            if (type(m) is torch.nn.Conv2d and m.padding_mode == "zeros"
                    and not isinstance(m.padding, str)):
                m.__class__ = PackedConv2d
                m._rdiffusers_pack = PackCache()
                n += 1
    return n


def unpack_convs(*modules):
    """Drop the packed weights of the PackedConv2d layers in `modules`, so
    each packs its current weight on its next call (needed after weights
    were edited through `.data`, e.g. by PEFT's merge / unmerge)."""
    from ._packed_conv import PackedConv2d
    n = 0
    for root in modules:
        if root is None or not hasattr(root, "modules"):
            continue
        for m in root.modules():
            if isinstance(m, PackedConv2d):
                m.unpack()
                n += 1
    return n
