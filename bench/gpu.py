"""Benchmark 6: the GPU fast path vs default diffusers settings (CUDA).

For full-size SD1.5- and SDXL-layout pipelines with random weights
(bench/build_models.py) at 512^2 and 1024^2, side by side in one run:
- "default": the pipeline as diffusers loads it in float32 (the setting a
  user gets without choosing anything) and in float16 (the common choice);
- the package's optimize = "auto" on a float32 pipeline (bf16 denoiser + VAE,
  channels_last, VAE tiling) and on a float16 pipeline (channels_last; what
  an R user gets by default on a GPU, where dtype = "auto" means float16);
- optionally "bf16-compile" (--compile).
Reports it/s (UNet steps per second with CFG, fixed costs such as the text
encoders and the VAE decode taken out), the ratio to default float32 and
float16, the UNet's share of the GPU's peak bf16 matmul FLOP/s (measured in
the same run; on CUDA torch's flop counter includes attention), peak memory
and the pixel drift from the float32 default for the same seed.

    python bench/gpu.py --out gpu.json [--families sd15,sdxl] [--sizes 512,1024] [--compile]

`--smoke --device cpu` runs the script on the offline tiny models at 64^2
with 3 steps: a check that it works on a machine without a GPU (the
CUDA-only calls -- synchronisation, peak memory, VAE tiling, out of memory
-- are not reached), not a benchmark (its JSON says "smoke": true and
report.py says so). The JSON is rewritten after every row, so a run cut
short by a time limit keeps what it measured; on a lent machine write it
under $OUT.
"""

import argparse
import gc
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "inst", "python"))
sys.path.insert(0, HERE)


class Device:
    """The few calls that differ between CUDA and a CPU smoke run."""

    def __init__(self, torch, name):
        self.torch, self.name = torch, name
        self.cuda = name.startswith("cuda")

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset_peak(self):
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self):
        return self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None

    def free(self):
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


def matmul_peak(torch, dev, dtype, n, reps=10):
    a = torch.randn(n, n, device=dev.name, dtype=dtype)
    b = torch.randn(n, n, device=dev.name, dtype=dtype)
    for _ in range(3):
        a @ b
    dev.sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    dev.sync()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def unet_gflop(torch, pipe, fam, size, device):
    """GFLOP of one UNet call with CFG (batch 2) at this size."""
    from torch.utils.flop_counter import FlopCounterMode
    unet = getattr(pipe.unet, "_orig_mod", pipe.unet)
    cfg = unet.config
    h = size // pipe.vae_scale_factor
    # Without the package's float32 interface, feed the UNet its own dtype.
    dt = torch.float32 if getattr(unet, "_rdiffusers_half", None) is not None else unet.dtype
    x = torch.randn(2, cfg.in_channels, h, h, device=device, dtype=dt)
    ehs = torch.randn(2, 77, cfg.cross_attention_dim, device=device, dtype=dt)
    extra = {}
    if fam == "sdxl":
        text_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, text_dim, device=device, dtype=dt),
            "time_ids": torch.randn(2, 6, device=device, dtype=dt)}
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet(x, torch.tensor(500), ehs, **extra)
    return fc.get_total_flops() / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu.json")
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--families", default="sd15,sdxl")
    ap.add_argument("--sizes", default=None, help="default 512,1024 (64 with --smoke)")
    ap.add_argument("--steps", type=int, default=None, help="default 10 (3 with --smoke)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed (steps, 1-step) pairs per setting; default 3 (1 with --smoke)")
    ap.add_argument("--smoke", action="store_true",
                    help="offline tiny models, small sizes: checks the script, measures nothing")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("64" if args.smoke else "512,1024")).split(",")]
    steps = args.steps or (3 if args.smoke else 10)
    repeats = args.repeats or (1 if args.smoke else 3)

    import numpy as np
    import torch
    import diffusers
    import build_models
    from rdiffusers_py import optimize as opt, tiny

    dev = Device(torch, args.device)
    if dev.cuda and not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs CUDA (or --smoke --device cpu to check the script).")
    if not dev.cuda and not args.smoke:
        sys.exit("Without CUDA, bench/gpu.py only runs as a check: --smoke --device cpu.")
    n = 8192 if dev.cuda else 512
    out = {"device": torch.cuda.get_device_name(torch.device(args.device)) if dev.cuda
           else args.device,
           "smoke": args.smoke, "steps": steps, "repeats": repeats,
           "torch": torch.__version__, "diffusers": diffusers.__version__,
           "matmul_peak_gflops": {"bf16": matmul_peak(torch, dev, torch.bfloat16, n),
                                  "fp16": matmul_peak(torch, dev, torch.float16, n),
                                  "fp32": matmul_peak(torch, dev, torch.float32, n)},
           "runs": []}
    if args.smoke:
        builders = {"sd15": lambda w: tiny.build("tiny", w),
                    "sdxl": lambda w: tiny.build("tiny-sdxl", w)}
    else:
        builders = {"sd15": build_models.build_sd15, "sdxl": build_models.build_sdxl}
    configs = [("default fp32", "float32", "none"), ("default fp16", "float16", "none"),
               ("rdiffusers auto (fp32 pipeline)", "float32", "auto"),
               ("rdiffusers auto (fp16 pipeline)", "float16", "auto")]
    if args.compile:
        configs.append(("rdiffusers bf16-compile", "float32", "bf16-compile"))
    def save():
        # After every row: a run cut short by a time limit keeps what it measured.
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.out)

    gflops = {}
    for fam in args.families.split(","):
        path = builders[fam](args.work)
        for size in sizes:
            ref = None
            for label, dtype, mode in configs:
                row = {"family": fam, "size": size, "config": label, "dtype": dtype}
                pipe = diffusers.DiffusionPipeline.from_pretrained(
                    path, dtype=getattr(torch, dtype)).to(args.device)
                pipe.set_progress_bar_config(disable=True)
                row["optimize"] = opt.apply(pipe, args.device, dtype,
                                            opt.resolve(mode, args.device, dtype))
                kw = dict(prompt="a lighthouse on a cliff at dawn", negative_prompt="blurry",
                          width=size, height=size, guidance_scale=7.5)

                def run(k, seed=42):
                    dev.sync()
                    t = time.perf_counter()
                    img = pipe(num_inference_steps=k, output_type="np",
                               generator=torch.Generator("cpu").manual_seed(seed), **kw).images[0]
                    dev.sync()
                    return time.perf_counter() - t, img
                try:
                    run(2)  # warm-up (and compile)
                    # Peak memory of generation once loaded and warm (loading
                    # and casting peaks are not in it).
                    dev.reset_peak()
                    t_full, t_one = [], []
                    for _ in range(repeats):  # interleaved: load drifts hit both alike
                        t, img = run(steps)
                        t_full.append(t)
                        t_one.append(run(1)[0])
                    # Steps/s without the fixed cost (text encoders, VAE decode):
                    # best (minimum times) and median.
                    its = (steps - 1) / max(min(t_full) - min(t_one), 1e-9)
                    its_median = (steps - 1) / max(float(np.median(t_full)) -
                                                   float(np.median(t_one)), 1e-9)
                    # The step's work is the model's, not the config's: count it
                    # once (counters see attention only through some kernels).
                    if (fam, size) not in gflops:
                        gflops[(fam, size)] = unet_gflop(torch, pipe, fam, size, args.device)
                    gflop = gflops[(fam, size)]
                    row.update({
                        "it_per_s": its, "it_per_s_median": its_median, "total_s": min(t_full),
                        "unet_gflop_per_step": gflop,
                        "pct_bf16_peak": 100 * gflop * its / out["matmul_peak_gflops"]["bf16"],
                        "peak_mem_gib": dev.peak_gib(), "nan": bool(np.isnan(img).any())})
                    if ref is None:
                        ref = img
                    else:
                        row["max_abs_pixel_diff_vs_default_fp32"] = float(np.abs(img - ref).max() * 255)
                except torch.OutOfMemoryError as e:
                    row["error"] = "OOM: %s" % e
                print(json.dumps(row), flush=True)
                out["runs"].append(row)
                save()
                del pipe
                if mode == "bf16-compile":
                    torch._dynamo.reset()
                dev.free()
            for base_label, key in (("default fp32", "ratio_vs_default_fp32"),
                                    ("default fp16", "ratio_vs_default_fp16")):
                base = [r for r in out["runs"] if r["family"] == fam and r["size"] == size
                        and r["config"] == base_label and "it_per_s" in r]
                for r in out["runs"]:
                    if r["family"] == fam and r["size"] == size and base and "it_per_s" in r:
                        r[key] = r["it_per_s"] / base[0]["it_per_s"]
            save()
    save()


if __name__ == "__main__":
    main()
