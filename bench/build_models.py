"""Build full-size, random-weight pipelines for the benchmarks (offline).

The weights are random but the architecture (and so the cost of one step)
is that of the real model, which is all a speed benchmark needs.  Models are
written with save_pretrained() so they load through the same
from_pretrained() path a real model takes.

    python bench/build_models.py [--out bench/work] [--family sd15|sd15-half|sdxl]

Prints the directory of each pipeline it built (or found already built).
"""

import argparse
import os
import sys


def _clip_tokenizer():
    # The package's offline byte-level tokenizer: the same code path as the
    # tiny test models.
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "inst", "python"))
    from rdiffusers_py.tiny import clip_tokenizer
    return clip_tokenizer()


def _clip_text(hidden, layers, heads, inter, projection_dim=None, with_projection=False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    cfg = CLIPTextConfig(hidden_size=hidden, intermediate_size=inter,
                         num_attention_heads=heads, num_hidden_layers=layers,
                         vocab_size=49408, max_position_embeddings=77,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2,
                         projection_dim=projection_dim or hidden,
                         hidden_act="quick_gelu")
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(cfg).eval()


def _scheduler():
    from diffusers import DDIMScheduler
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def _vae(sample_size, channels=(128, 256, 512, 512)):
    from diffusers import AutoencoderKL
    # The SD1.5/SDXL VAE layout (83 M parameters at full width).
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        block_out_channels=channels, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=sample_size, scaling_factor=0.18215 if sample_size == 512 else 0.13025,
    ).eval()


def build_sd15(out, half=False):
    """SD1.5 layout: UNet 860 M params (the v1-5 unet/config.json), full VAE
    and CLIP ViT-L/14 text encoder.  half=True halves every UNet and VAE
    width (UNet 215 M params, a quarter of the FLOPs): the same code path at
    a cost that suits the bridge benchmarks on a small machine."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    path = os.path.join(out, "sd15-half-random" if half else "sd15-random")
    if os.path.exists(os.path.join(path, "model_index.json")):
        return path
    torch.manual_seed(0)
    w = 2 if half else 1
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4,
        block_out_channels=tuple(c // w for c in (320, 640, 1280, 1280)), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                          "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D",
                        "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
    ).eval()
    pipe = StableDiffusionPipeline(
        vae=_vae(512, tuple(c // w for c in (128, 256, 512, 512))),
        text_encoder=_clip_text(768, 12, 12, 3072),
        tokenizer=_clip_tokenizer(),
        unet=unet, scheduler=_scheduler(), safety_checker=None,
        feature_extractor=None, image_encoder=None,
        requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_sdxl(out):
    """SDXL layout: UNet 2.6 B params (the base-1.0 unet/config.json), full
    VAE, CLIP ViT-L + OpenCLIP bigG text encoders."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    path = os.path.join(out, "sdxl-random")
    if os.path.exists(os.path.join(path, "model_index.json")):
        return path
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4,
        block_out_channels=(320, 640, 1280), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
        use_linear_projection=True, cross_attention_dim=2048,
        addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816, norm_num_groups=32,
    ).eval()
    tok = _clip_tokenizer()
    pipe = StableDiffusionXLPipeline(
        vae=_vae(1024),
        text_encoder=_clip_text(768, 12, 12, 3072),
        text_encoder_2=_clip_text(1280, 32, 20, 5120, projection_dim=1280,
                                  with_projection=True),
        tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=_scheduler(),
        force_zeros_for_empty_prompt=True)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "work"))
    ap.add_argument("--family", default="sd15", choices=["sd15", "sd15-half", "sdxl"])
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    build = {"sd15": build_sd15, "sd15-half": lambda o: build_sd15(o, half=True),
             "sdxl": build_sdxl}[args.family]
    print(build(args.out))


if __name__ == "__main__":
    sys.exit(main())
