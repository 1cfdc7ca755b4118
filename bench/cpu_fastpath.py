"""Benchmark 5: the CPU fast path (optimize = "bf16") vs plain diffusers.

On a full-size SD1.5-layout pipeline with random weights (bench/build_models.py)
this measures, side by side in one run and repeated (min of the repeats):
- the matmul peak of this machine in bf16 and float32 (best of 2048^3 and
  4096^3 GEMMs);
- one UNet step with CFG (batch 2) at --size for: fp32 (plain diffusers),
  bf16 autocast, bf16 weights (fp32 interface), + channels_last, + packed
  conv weights (the package's "bf16" mode), and optionally + torch.compile
  ("bf16-compile");
- the share of the bf16 matmul peak each reaches (FLOPs counted by
  torch.utils.flop_counter on the same call: convolutions and matmuls;
  it does not count CPU attention);
- the attention calls of one step timed alone (same shapes, bf16), and what
  is left of a step at the 60 % target once they are paid: the rate the
  counted FLOPs would need, as a share of the peak;
- the drift of the package's "bf16" mode from fp32 on the full pipeline
  (same seed, --drift-steps steps, decoded pixels and latents), and whether
  two identical bf16 calls give identical pixels.

    python bench/cpu_fastpath.py --model bench/work/sd15-random --size 512 --json out.json
"""

import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "inst", "python"))


def matmul_gflops(dtype, n=2048, reps=3):
    """GFLOP/s of an n^3 matmul, best of `reps` (after one warm-up)."""
    import torch
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def exp_rate(threads, sizes=(32768, 131072, 262144), reps=300):
    """Exponentials per second that torch's vectorised exp reaches on data in
    cache: best per-thread rate over a few sizes, times `threads` (exp is
    arithmetic on each core, so it scales with cores)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    best = 0.0
    try:
        for n in sizes:
            x = torch.randn(n)
            o = torch.empty_like(x)
            torch.exp(x, out=o)
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(reps):
                    torch.exp(x, out=o)
                best = max(best, n * reps / (time.perf_counter() - t))
    finally:
        torch.set_num_threads(old)
    return best * threads


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "work", "sd15-random"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--compile", action="store_true", help="also time bf16-compile (slow to compile)")
    ap.add_argument("--drift-size", type=int, default=512)
    ap.add_argument("--drift-steps", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline
    from torch.utils.flop_counter import FlopCounterMode
    from rdiffusers_py import optimize as opt

    torch.set_num_threads(args.threads)
    out = {"size": args.size, "threads": args.threads, "reps": args.reps,
           "cpu_native_bf16": opt.cpu_has_native_bf16()}

    pipe = StableDiffusionPipeline.from_pretrained(args.model, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    unet32 = pipe.unet
    out["unet_params_M"] = round(sum(p.numel() for p in unet32.parameters()) / 1e6, 1)

    g = torch.Generator().manual_seed(0)
    h = args.size // 8
    x = torch.randn(2, 4, h, h, generator=g)
    ehs = torch.randn(2, 77, 768, generator=g)
    t = torch.tensor(500)

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet32(x, t, ehs)
    flops = fc.get_total_flops()
    out["unet_step_gflop"] = round(flops / 1e9, 1)

    unet_bf = copy.deepcopy(unet32)
    opt._run_in(unet_bf, torch.bfloat16)
    unet_bf_cl = copy.deepcopy(unet_bf)
    unet_bf_cl.to(memory_format=torch.channels_last)
    unet_pkg = copy.deepcopy(unet_bf_cl)
    if opt.cpu_has_native_bf16():          # what optimize.apply() does
        opt.prepack_convs(unet_pkg)

    def step(u, autocast=False, cl=False):
        xx = x.contiguous(memory_format=torch.channels_last) if cl else x
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return u(xx, t, ehs).sample.float()

    variants = {
        "fp32 (diffusers default)": lambda: step(unet32),
        "bf16 autocast": lambda: step(unet32, autocast=True),
        "bf16 weights": lambda: step(unet_bf),
        "bf16 + channels_last": lambda: step(unet_bf_cl, cl=True),
        "bf16 + channels_last + packed convs (package)": lambda: step(unet_pkg, cl=True),
    }
    pkg_name = "bf16 + channels_last + packed convs (package)"

    # The attention calls of one package step, to be timed alone.
    import torch.nn.functional as F
    sdpa = F.scaled_dot_product_attention
    calls = []

    def spy(q, k, v, *a, **kw):
        calls.append([(tuple(z.shape), tuple(z.stride())) for z in (q, k, v)] + [a, kw])
        return sdpa(q, k, v, *a, **kw)
    F.scaled_dot_product_attention = spy
    try:
        step(unet_pkg, cl=True)
    finally:
        F.scaled_dot_product_attention = sdpa
    attn_inputs = [([torch.empty_strided(sh, st, dtype=torch.bfloat16).normal_(generator=g)
                     for sh, st in c[:3]], c[3], c[4]) for c in calls]

    def attention_alone():
        with torch.no_grad():
            for (q, k, v), a, kw in attn_inputs:
                sdpa(q, k, v, *a, **kw)
    attn_gflop = sum(4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3]
                     for (q, k, v), _, _ in attn_inputs) / 1e9
    # Exact softmax needs one exponential per query-key score.
    attn_exps = sum(q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2]
                    for (q, k, v), _, _ in attn_inputs)
    out["attention"] = {"calls": len(attn_inputs), "gflop": round(attn_gflop, 1),
                        "shapes": sorted({"q %s, %d keys" % (list(c[0][0]), c[1][0][2])
                                          for c in calls})}
    compile_s = None
    if args.compile:
        import torch._inductor.config as ic
        ic.freezing = True
        unet_c = torch.compile(copy.deepcopy(unet_bf_cl), dynamic=False)
        t0 = time.perf_counter()
        step(unet_c, cl=True)
        compile_s = time.perf_counter() - t0
        variants["bf16 + channels_last + compile"] = lambda: step(unet_c, cl=True)
    out["compile_seconds"] = compile_s

    times = {k: [] for k in variants}
    attn_times = []
    exp_rates = []
    peaks = {"bf16": [], "fp32": []}
    outputs = {}
    for k, f in variants.items():  # warm-up (oneDNN primitive caches)
        outputs[k] = f()
    attention_alone()
    for r in range(args.reps):
        for n in (2048, 4096):
            peaks["bf16"].append(matmul_gflops(torch.bfloat16, n))
            peaks["fp32"].append(matmul_gflops(torch.float32, n, reps=2))
        for k, f in variants.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        attention_alone()
        attn_times.append(time.perf_counter() - t0)
        exp_rates.append(exp_rate(args.threads))
        print("rep", r, {k: round(v[-1], 2) for k, v in times.items()},
              "attention alone", round(attn_times[-1], 2), flush=True)
    bf16_peak = max(peaks["bf16"])
    fp32_peak = max(peaks["fp32"])
    out["matmul_peak_gflops"] = {"bf16": round(bf16_peak, 1), "fp32": round(fp32_peak, 1)}
    ref = outputs["fp32 (diffusers default)"]
    rows = []
    base = min(times["fp32 (diffusers default)"])
    for k, ts in times.items():
        best = min(ts)
        gf = flops / best / 1e9
        rows.append({"variant": k, "s_per_step": round(best, 3),
                     "median_s": round(float(np.median(ts)), 3),
                     "speedup_vs_fp32": round(base / best, 2),
                     "gflops": round(gf, 1),
                     "pct_bf16_peak": round(100 * gf / bf16_peak, 1),
                     "pct_fp32_peak": round(100 * gf / fp32_peak, 1),
                     "unet_out_max_abs_diff": float((outputs[k] - ref).abs().max())})
    out["unet_step"] = rows
    attn_s = min(attn_times)
    # A step at the 60 % target, minus the attention as measured, leaves this
    # much time for the counted FLOPs (convolutions, matmuls) even if every
    # other op (norms, activations, copies) were free.
    target_s = flops / (0.6 * bf16_peak * 1e9)
    left_s = target_s - attn_s
    # The floor for any exact attention kernel here: its matmuls at the
    # matmul peak plus its exponentials at torch's exp rate, nothing else.
    rate = max(exp_rates)
    floor_s = attn_gflop / bf16_peak + attn_exps / rate
    left_floor_s = target_s - floor_s

    def rest_pct(step_s):
        # What the counted FLOPs reach now once attention's time is taken out.
        return round(100 * flops / (step_s - attn_s) / 1e9 / bf16_peak, 1)
    out["attention"].update({
        "seconds": round(attn_s, 3),
        "gflops": round(attn_gflop / attn_s, 1),
        "share_of_package_step": round(attn_s / min(times[pkg_name]), 3),
        "target_s_per_step": round(target_s, 3),
        "left_for_counted_flops_s": round(left_s, 3),
        "needed_pct_of_bf16_peak": round(100 * flops / left_s / 1e9 / bf16_peak, 1)
        if left_s > 0 else None,
        "exps": attn_exps,
        "exp_per_s": round(rate),
        "floor_s": round(floor_s, 3),
        "needed_pct_of_bf16_peak_at_floor": round(100 * flops / left_floor_s / 1e9 / bf16_peak, 1)
        if left_floor_s > 0 else None,
        "rest_pct_of_bf16_peak": {k: rest_pct(min(times[k])) for k in times
                                  if k == pkg_name or "compile" in k},
    })
    out["unet_out_std"] = float(ref.std())
    del unet_bf, unet_bf_cl, unet_pkg, variants, outputs, attn_inputs
    if args.compile:
        del unet_c

    # Drift on the full pipeline: plain diffusers fp32 vs the package's mode.
    kw = dict(prompt="a lighthouse on a cliff at dawn", negative_prompt="blurry",
              num_inference_steps=args.drift_steps, guidance_scale=7.5,
              width=args.drift_size, height=args.drift_size)

    def gen():
        # Latents once, decoded the way the pipeline decodes them: one
        # denoising run gives both the latent and the pixel drift.
        lat = pipe(generator=torch.Generator("cpu").manual_seed(42), output_type="latent",
                   **kw).images
        img = pipe.vae.decode(lat / pipe.vae.config.scaling_factor, return_dict=False)[0]
        px = pipe.image_processor.postprocess(img, output_type="pil")[0]
        return lat.float(), np.asarray(px, dtype=np.int16)

    with torch.no_grad():
        lat32, px32 = gen()
        applied = opt.apply(pipe, "cpu", "float32", "bf16")
        latbf, px_a = gen()
        _, px_b = gen()
    d = np.abs(px_a - px32)
    out["drift"] = {
        "mode": applied, "size": args.drift_size, "steps": args.drift_steps,
        "latent_max_abs": float((latbf - lat32).abs().max()),
        "latent_std": float(lat32.std()),
        "pixel_max_abs_0_255": int(d.max()),
        "pixel_mean_abs_0_255": round(float(d.mean()), 3),
        "pixel_share_changed_gt_2": round(float((d > 2).mean()), 4),
        "bf16_twice_identical": bool(np.array_equal(px_a, px_b)),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
