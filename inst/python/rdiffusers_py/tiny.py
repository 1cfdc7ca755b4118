"""Tiny random-weight pipelines built offline.

Tests (R and Python) and examples cannot download models, so the helper builds
small pipelines with the same layout as SD1.5, SDXL and SD3 from fixed seeds,
saves them with save_pretrained() (safetensors) and then loads them through the
normal from_pretrained() path, exactly as a real model directory would be.
The configs follow diffusers' own fast tests.
"""

import os
import shutil
import tempfile
import threading

from .errors import InputError

__all__ = ["TINY", "tiny_dir", "build", "tiny_single_file"]

# Bump a model's suffix when its config below changes, so old caches are not
# reused. tiny-sd3 v2: 16 latent channels like SD3 (its inpaint pipeline
# refuses other counts).
_VERSIONS = {"tiny": "v1", "tiny-sdxl": "v1", "tiny-sd3": "v2"}

_BUILD_LOCK = threading.Lock()

# name -> family; the builders are below.
TINY = {"tiny": "sd15", "tiny-sdxl": "sdxl", "tiny-sd3": "sd3"}


def tiny_dir(name, cache_dir):
    return os.path.join(cache_dir, "tiny", "%s-%s" % (name, _VERSIONS[name]))


def build(name, cache_dir):
    """Return the directory of tiny pipeline `name`, building it if needed.

    The build happens in a temporary directory next to the target and is
    renamed into place, so a reader never sees a half-written model and two
    concurrent builders cannot corrupt each other (the loser discards its copy).
    """
    if name not in TINY:
        raise InputError("Unknown tiny model %r; tiny models are: %s."
                         % (name, ", ".join(sorted(TINY))))
    target = tiny_dir(name, cache_dir)
    if os.path.isfile(os.path.join(target, "model_index.json")):
        return target
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    from .pipeline import setup_torch
    torch = setup_torch()
    # The builders seed torch's global generator: serialize builds in this
    # process (threads would interleave draws) and restore the caller's
    # random state afterwards.
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        pipe = _BUILDERS[TINY[name]]()
    _sweep_stale_builds(parent, name)
    tmp = tempfile.mkdtemp(prefix=".build-%s-" % name, dir=parent)
    try:
        # mkdtemp() makes it owner-only; the model is as readable as any
        # other file the user creates.
        os.chmod(tmp, 0o777 & ~_umask())
        pipe.save_pretrained(tmp, safe_serialization=True)
        try:
            os.rename(tmp, target)
        except OSError:
            # Someone else finished first (target exists and is not empty).
            if not os.path.isfile(os.path.join(target, "model_index.json")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _umask():
    # Read, not set-and-restore: setting it would briefly change the
    # process's umask for every other thread.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _sweep_stale_builds(parent, name, max_age_s=3600):
    """Remove build folders of `name` left by a process killed while
    writing (finally: does not run then); a live build takes seconds."""
    import time
    for entry in os.listdir(parent):
        if not entry.startswith(".build-%s-" % name):
            continue
        path = os.path.join(parent, entry)
        try:
            if time.time() - os.stat(path).st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


# --- a single-file (original LDM layout) checkpoint --------------------------

def tiny_single_file(cache_dir):
    """Return the path of <cache_dir>/tiny/tiny-v1.safetensors, writing it once.

    It holds the weights of tiny model "tiny" (SD1.5 layout) as ONE checkpoint
    in the original LDM/CompVis layout (model.diffusion_model.*,
    first_stage_model.*, cond_stage_model.transformer.*), like the files
    people download from model sites.  It exists so that single-file loading
    can be tested offline: from_single_file(path, config=<tiny dir>) must give
    back exactly the weights of the tiny diffusers directory.
    The file is written to a temporary name next to the target and renamed
    into place, so readers never see half a file.
    """
    import json
    from safetensors.torch import load_file, save_file
    target = os.path.join(cache_dir, "tiny", "tiny-%s.safetensors" % _VERSIONS["tiny"])
    if os.path.isfile(target):
        return target
    src = build("tiny", cache_dir)

    def part(sub, weights):
        with open(os.path.join(src, sub, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        return load_file(os.path.join(src, sub, weights)), config

    unet, unet_config = part("unet", "diffusion_pytorch_model.safetensors")
    vae, vae_config = part("vae", "diffusion_pytorch_model.safetensors")
    clip, _ = part("text_encoder", "model.safetensors")
    out = {}
    for prefix, converted in [("model.diffusion_model.", _unet_to_ldm(unet, unet_config)),
                              ("first_stage_model.", _vae_to_ldm(vae, vae_config)),
                              ("cond_stage_model.transformer.", _clip_to_ldm(clip))]:
        for k, v in converted.items():
            out[prefix + k] = v.contiguous()
    fd, tmp = tempfile.mkstemp(prefix=".tiny-single-file-", suffix=".safetensors",
                               dir=os.path.dirname(target))
    os.close(fd)
    try:
        save_file(out, tmp, metadata={"format": "pt"})
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _rename(sd, prefixes, fixed=(), inner=None, what="model"):
    """Rename diffusers keys to LDM keys.  fixed: whole-key renames; prefixes:
    (diffusers prefix, LDM prefix, kind); inner[kind](rest, tensor) renames the
    part after the prefix (and may reshape the tensor).  Every key must be
    mapped: an unmapped key is an error, never silently dropped."""
    fixed = dict(fixed)
    out = {}
    for key, value in sd.items():
        if key in fixed:
            new = fixed[key]
        else:
            for old, ldm, kind in prefixes:
                if key.startswith(old):
                    rest = key[len(old):]
                    if inner and kind in inner:
                        rest, value = inner[kind](rest, value)
                    new = ldm + rest
                    break
            else:
                raise ValueError("No LDM name for %s key %r." % (what, key))
        if new in out:
            raise ValueError("Two %s keys map to LDM key %r." % (what, new))
        out[new] = value
    return out


def _swap_first(rest, names):
    head, _, tail = rest.partition(".")
    return (names.get(head, head) + "." + tail) if tail else names.get(head, head)


# diffusers ResnetBlock2D -> LDM ResBlock (UNet) / ResnetBlock (VAE).
_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3",
                "conv_shortcut": "skip_connection"}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}


def _unet_to_ldm(sd, config):
    """diffusers UNet2DConditionModel (SD1.x/2.x) -> LDM UNetModel keys: the
    inverse of diffusers' convert_ldm_unet_checkpoint.  Transformer (attention)
    blocks keep their inner names in both layouts."""
    lpb = config["layers_per_block"]
    if not isinstance(lpb, int):
        raise ValueError("Only an integer layers_per_block has an LDM layout.")
    n = len(config["block_out_channels"])
    p = []
    # input_blocks.0 is conv_in; then each down block holds lpb layers
    # (resnet [+ attention]) and, except the last, a downsampler.
    for b in range(n):
        base = 1 + b * (lpb + 1)
        for j in range(lpb):
            ldm = "input_blocks.%d." % (base + j)
            p.append(("down_blocks.%d.resnets.%d." % (b, j), ldm + "0.", "res"))
            p.append(("down_blocks.%d.attentions.%d." % (b, j), ldm + "1.", None))
        p.append(("down_blocks.%d.downsamplers.0.conv." % b, "input_blocks.%d.0.op." % (base + lpb),
                  None))
    p += [("mid_block.resnets.0.", "middle_block.0.", "res"),
          ("mid_block.attentions.0.", "middle_block.1.", None),
          ("mid_block.resnets.1.", "middle_block.2.", "res")]
    # Each up block holds lpb + 1 layers; the upsampler sits in the last one,
    # after its attention when the block has attentions.
    for b in range(n):
        base = b * (lpb + 1)
        for j in range(lpb + 1):
            ldm = "output_blocks.%d." % (base + j)
            p.append(("up_blocks.%d.resnets.%d." % (b, j), ldm + "0.", "res"))
            p.append(("up_blocks.%d.attentions.%d." % (b, j), ldm + "1.", None))
        has_attn = any(k.startswith("up_blocks.%d.attentions." % b) for k in sd)
        p.append(("up_blocks.%d.upsamplers.0." % b,
                  "output_blocks.%d.%d." % (base + lpb, 2 if has_attn else 1), None))
    fixed = {"time_embedding.linear_1.weight": "time_embed.0.weight",
             "time_embedding.linear_1.bias": "time_embed.0.bias",
             "time_embedding.linear_2.weight": "time_embed.2.weight",
             "time_embedding.linear_2.bias": "time_embed.2.bias",
             "conv_in.weight": "input_blocks.0.0.weight", "conv_in.bias": "input_blocks.0.0.bias",
             "conv_norm_out.weight": "out.0.weight", "conv_norm_out.bias": "out.0.bias",
             "conv_out.weight": "out.2.weight", "conv_out.bias": "out.2.bias"}
    inner = {"res": lambda rest, v: (_swap_first(rest, _UNET_RESNET), v)}
    return _rename(sd, p, fixed, inner, "UNet")


def _vae_attn(rest, value):
    # to_out.0.weight -> proj_out.weight; linear weights -> 1x1 conv weights.
    if rest.startswith("to_out.0."):
        rest = "to_out." + rest[len("to_out.0."):]
    rest = _swap_first(rest, _VAE_ATTN)
    if rest.endswith("weight") and value.ndim == 2:
        value = value.reshape(value.shape[0], value.shape[1], 1, 1)
    return rest, value


def _vae_to_ldm(sd, config):
    """diffusers AutoencoderKL -> LDM AutoencoderKL keys: the inverse of
    diffusers' convert_ldm_vae_checkpoint (decoder blocks are numbered from
    the lowest resolution in diffusers, from the highest in LDM)."""
    n = len(config["block_out_channels"])
    p = []
    for b in range(n):
        p.append(("encoder.down_blocks.%d.resnets." % b, "encoder.down.%d.block." % b, "res"))
        p.append(("encoder.down_blocks.%d.downsamplers.0.conv." % b,
                  "encoder.down.%d.downsample.conv." % b, None))
        ldm = n - 1 - b
        p.append(("decoder.up_blocks.%d.resnets." % b, "decoder.up.%d.block." % ldm, "res"))
        p.append(("decoder.up_blocks.%d.upsamplers.0.conv." % b,
                  "decoder.up.%d.upsample.conv." % ldm, None))
    for part in ("encoder", "decoder"):
        p += [("%s.mid_block.resnets.0." % part, "%s.mid.block_1." % part, "mid"),
              ("%s.mid_block.resnets.1." % part, "%s.mid.block_2." % part, "mid"),
              ("%s.mid_block.attentions.0." % part, "%s.mid.attn_1." % part, "attn")]
    fixed = {}
    for part in ("encoder", "decoder"):
        for t in ("weight", "bias"):
            fixed["%s.conv_norm_out.%s" % (part, t)] = "%s.norm_out.%s" % (part, t)
            for name in ("conv_in", "conv_out"):
                fixed["%s.%s.%s" % (part, name, t)] = "%s.%s.%s" % (part, name, t)
    for name in ("quant_conv", "post_quant_conv"):
        for t in ("weight", "bias"):
            fixed["%s.%s" % (name, t)] = "%s.%s" % (name, t)

    def res(rest, v):
        # "<j>.conv_shortcut.weight": keep the index, rename the layer.
        j, _, tail = rest.partition(".")
        return j + "." + _swap_first(tail, _VAE_RESNET), v

    inner = {"res": res, "mid": lambda rest, v: (_swap_first(rest, _VAE_RESNET), v),
             "attn": _vae_attn}
    return _rename(sd, p, fixed, inner, "VAE")


def _clip_to_ldm(sd):
    """transformers CLIPTextModel -> the keys under cond_stage_model.transformer.
    (transformers >= 5.6 saves CLIPTextModel without the text_model. level
    that original checkpoints have)."""
    return {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in sd.items()}


# --- tokenizers -------------------------------------------------------------

def _bytes_to_unicode():
    # CLIP's byte-level alphabet (same table as in transformers).
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer():
    """A byte-level CLIP tokenizer built offline (no merges): turns any prompt
    into token ids.  Also used by bench/build_models.py."""
    from transformers import CLIPTokenizer
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    # Without model_max_length the tokenizer would pad to 1e30.
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _t5_tokenizer():
    from transformers import T5Tokenizer
    # A unigram vocabulary of single characters: enough to tokenize any ASCII
    # prompt, without training sentencepiece.
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    chars = [("\u2581", -1.0)] + [(chr(c), -2.0) for c in range(33, 127)]
    return T5Tokenizer(vocab=specials + chars, extra_ids=0, model_max_length=77)


# --- builders ---------------------------------------------------------------

def _clip_config(**kw):
    from transformers import CLIPTextConfig
    args = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1, layer_norm_eps=1e-05,
                vocab_size=1000, max_position_embeddings=77)
    args.update(kw)
    return CLIPTextConfig(**args)


def _sd15():
    import torch
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32,
        in_channels=4, out_channels=4, cross_attention_dim=8, norm_num_groups=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4, norm_num_groups=2)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_config(
        hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=2))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(),
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        image_encoder=None, requires_safety_checker=False)


def _sdxl():
    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(2, 4), layers_per_block=2, sample_size=32,
        in_channels=4, out_channels=4, attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80, cross_attention_dim=64,
        norm_num_groups=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4, sample_size=128)
    cfg = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
               num_hidden_layers=5, hidden_act="gelu", projection_dim=32)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_config(**cfg))
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(**cfg))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        steps_offset=1, timestep_spacing="leading")
    return StableDiffusionXLPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(),
        text_encoder_2=text_encoder_2, tokenizer_2=clip_tokenizer(),
        scheduler=scheduler, image_encoder=None, feature_extractor=None)


def _sd3():
    import torch
    from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler,
                           SD3Transformer2DModel, StableDiffusion3Pipeline)
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=16, num_layers=1,
        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
        joint_attention_dim=32, pooled_projection_dim=64, out_channels=16)
    cfg = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
               num_hidden_layers=5, hidden_act="gelu", projection_dim=32)
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(_clip_config(**cfg))
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(**cfg))
    torch.manual_seed(0)
    text_encoder_3 = T5EncoderModel(T5Config(
        vocab_size=128, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1))
    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
        layers_per_block=1, latent_channels=16, norm_num_groups=1,
        use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035)
    return StableDiffusion3Pipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder, tokenizer=clip_tokenizer(),
        text_encoder_2=text_encoder_2, tokenizer_2=clip_tokenizer(),
        text_encoder_3=text_encoder_3, tokenizer_3=_t5_tokenizer())


_BUILDERS = {"sd15": _sd15, "sdxl": _sdxl, "sd3": _sd3}
