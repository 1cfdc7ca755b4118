"""Benchmark 6: the GPU fast path vs default diffusers settings (CUDA).

For full-size SD1.5- and SDXL-layout pipelines with random weights
(bench/build_models.py) at 512^2 and 1024^2, side by side in one run:
- "default": the pipeline as diffusers loads it in float32 (the setting a
  user gets without choosing anything) and in float16 (the common choice);
- the package's optimize = "auto" on a float32 pipeline (bf16 denoiser + VAE,
  channels_last, VAE tiling) and on a float16 pipeline (channels_last);
- optionally "bf16-compile" (--compile).
Reports it/s (UNet steps per second with CFG), the ratio to default, the
UNet's share of the GPU's peak bf16 matmul FLOP/s (measured in the same run)
and the pixel drift from the float32 default for the same seed.

    python bench/gpu.py --out gpu.json [--families sd15,sdxl] [--sizes 512,1024] [--compile]
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "inst", "python"))
sys.path.insert(0, HERE)


def matmul_peak(torch, dtype, n=8192, reps=10):
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu.json")
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--families", default="sd15,sdxl")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import diffusers
    from torch.utils.flop_counter import FlopCounterMode
    import build_models
    from rdiffusers_py import optimize as opt

    if not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs CUDA.")
    out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "diffusers": diffusers.__version__,
           "matmul_peak_gflops": {"bf16": matmul_peak(torch, torch.bfloat16),
                                  "fp16": matmul_peak(torch, torch.float16),
                                  "fp32": matmul_peak(torch, torch.float32)},
           "runs": []}
    builders = {"sd15": build_models.build_sd15, "sdxl": build_models.build_sdxl}
    for fam in args.families.split(","):
        path = builders[fam](args.work)
        for size in [int(s) for s in args.sizes.split(",")]:
            configs = [("default fp32", "float32", "none"), ("default fp16", "float16", "none"),
                       ("rdiffusers auto (fp32 pipeline)", "float32", "auto"),
                       ("rdiffusers auto (fp16 pipeline)", "float16", "auto")]
            if args.compile:
                configs.append(("rdiffusers bf16-compile", "float32", "bf16-compile"))
            ref = None
            for label, dtype, mode in configs:
                pipe = diffusers.DiffusionPipeline.from_pretrained(
                    path, dtype=getattr(torch, dtype)).to("cuda")
                pipe.set_progress_bar_config(disable=True)
                applied = opt.apply(pipe, "cuda", dtype, opt.resolve(mode, "cuda", dtype))
                kw = dict(prompt="a lighthouse on a cliff at dawn", negative_prompt="blurry",
                          width=size, height=size, guidance_scale=7.5)

                def run(steps, seed=42):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    img = pipe(num_inference_steps=steps, output_type="np",
                               generator=torch.Generator("cpu").manual_seed(seed), **kw).images[0]
                    torch.cuda.synchronize()
                    return time.perf_counter() - t, img
                try:
                    run(2)  # warm-up (and compile)
                    torch.cuda.reset_peak_memory_stats()
                    t_full, img = run(args.steps)
                    t_one, _ = run(1)
                    # Steps/s without the fixed cost (text encoders, VAE decode).
                    its = (args.steps - 1) / max(t_full - t_one, 1e-9)
                    h = size // 8
                    unet = getattr(pipe.unet, "_orig_mod", pipe.unet)
                    with torch.no_grad(), FlopCounterMode(display=False) as fc:
                        x = torch.randn(2, 4, h, h, device="cuda")
                        ehs = torch.randn(2, 77, unet.config.cross_attention_dim, device="cuda")
                        extra = {}
                        if fam == "sdxl":
                            extra["added_cond_kwargs"] = {
                                "text_embeds": torch.randn(2, 1280, device="cuda"),
                                "time_ids": torch.randn(2, 6, device="cuda")}
                        # Without the package's float32 interface, feed the UNet's dtype.
                        cast = getattr(unet, "_rdiffusers_half", None) is None
                        extra = {k: ({n: t.to(unet.dtype) for n, t in v.items()} if cast else v)
                                 for k, v in extra.items()}
                        unet(x.to(unet.dtype) if cast else x, torch.tensor(500),
                             ehs.to(unet.dtype) if cast else ehs, **extra)
                    gflop = fc.get_total_flops() / 1e9
                    row = {"family": fam, "size": size, "config": label, "dtype": dtype,
                           "optimize": applied, "it_per_s": its, "total_s": t_full,
                           "unet_gflop_per_step": gflop,
                           "pct_bf16_peak": 100 * gflop * its / out["matmul_peak_gflops"]["bf16"],
                           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                           "nan": bool(np.isnan(img).any())}
                    if ref is None:
                        ref = img
                    else:
                        row["max_abs_pixel_diff_vs_default_fp32"] = float(np.abs(img - ref).max() * 255)
                except torch.cuda.OutOfMemoryError as e:
                    row = {"family": fam, "size": size, "config": label, "error": "OOM: %s" % e}
                print(json.dumps(row), flush=True)
                out["runs"].append(row)
                del pipe
                torch.cuda.empty_cache()
            base = [r for r in out["runs"] if r["family"] == fam and r["size"] == size
                    and r["config"] == "default fp32" and "it_per_s" in r]
            for r in out["runs"]:
                if r["family"] == fam and r["size"] == size and base and "it_per_s" in r:
                    r["ratio_vs_default_fp32"] = r["it_per_s"] / base[0]["it_per_s"]
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
