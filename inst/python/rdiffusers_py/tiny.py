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

__all__ = ["TINY", "tiny_dir", "build"]

# Bump the suffix when a config below changes, so old caches are not reused.
_VERSION = "v1"

_BUILD_LOCK = threading.Lock()

# name -> family; the builders are below.
TINY = {"tiny": "sd15", "tiny-sdxl": "sdxl", "tiny-sd3": "sd3"}


def tiny_dir(name, cache_dir):
    return os.path.join(cache_dir, "tiny", "%s-%s" % (name, _VERSION))


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
    tmp = tempfile.mkdtemp(prefix=".build-%s-" % name, dir=parent)
    try:
        # The builders seed torch's global generator: serialize builds in this
        # process (threads would interleave draws) and restore the caller's
        # random state afterwards.
        with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
            pipe = _BUILDERS[TINY[name]]()
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
        sample_size=32, patch_size=1, in_channels=4, num_layers=1,
        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
        joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
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
        layers_per_block=1, latent_channels=4, norm_num_groups=1,
        use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035)
    return StableDiffusion3Pipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder, tokenizer=clip_tokenizer(),
        text_encoder_2=text_encoder_2, tokenizer_2=clip_tokenizer(),
        text_encoder_3=text_encoder_3, tokenizer_3=_t5_tokenizer())


_BUILDERS = {"sd15": _sd15, "sdxl": _sdxl, "sd3": _sd3}
