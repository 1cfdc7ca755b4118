"""Collect the JSON files of one bench/run.sh run into bench/results/<name>.md
and <name>.json, with machine, versions, date and the system load."""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import subprocess


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _gpu(w, files=None):
    """gpu.json, or several gpu-*.json (one per family, as run in parts on
    a machine with a time limit per command) merged into one. Parts from
    different devices, or smoke and real runs, are not merged; each row
    keeps the matmul peak of its own part, and a setting measured twice
    keeps its later file's row."""
    paths = files or sorted(glob.glob(os.path.join(w, "gpu*.json")))
    parts = [p for p in (_read(path) for path in paths) if p]
    if not parts:
        return None
    kinds = sorted({(p["device"], bool(p.get("smoke"))) for p in parts})
    if len(kinds) > 1:
        raise SystemExit("bench/report.py: these GPU results come from different devices or mix "
                         "smoke and real runs: %s. Name the files to merge with --gpu." % kinds)
    merged = dict(parts[0])
    rows = {}
    for p in parts:
        for r in p["runs"]:
            r = dict(r, matmul_peak_bf16_gflops=p["matmul_peak_gflops"]["bf16"])
            rows[(r["family"], r["size"], r["config"])] = r
    merged["runs"] = list(rows.values())
    merged["parts"] = len(parts)
    return merged


def machine():
    info = {"platform": platform.platform(), "cores": os.cpu_count()}
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", txt)
        info["cpu"] = m.group(1).strip() if m else None
        flags = re.search(r"Flags:\s*(.+)", txt)
        flags = flags.group(1).split() if flags else []
        info["bf16_flags"] = [f for f in flags if "bf16" in f or f.startswith("amx")]
    except OSError:
        pass
    try:
        mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0]
        info["mem_gib"] = round(int(mem.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def versions():
    import importlib
    v = {"python": platform.python_version()}
    for m in ("torch", "diffusers", "transformers", "numpy", "PIL"):
        try:
            v[m] = importlib.import_module(m).__version__
        except Exception:  # noqa: BLE001
            v[m] = None
    try:
        v["R"] = subprocess.run(["Rscript", "-e", "cat(format(getRversion()))"],
                                capture_output=True, text=True).stdout.strip()
        desc = open("DESCRIPTION").read()
        v["rdiffusers"] = re.search(r"^Version:\s*(\S+)", desc, re.M).group(1)
        v["reticulate"] = subprocess.run(
            ["Rscript", "-e", "cat(format(packageVersion('reticulate')))"],
            capture_output=True, text=True).stdout.strip()
        v["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    return v


def f(x, d=2):
    return "-" if x is None else ("%.*f" % (d, x))


def gpu_section(g):
    L = []
    if g.get("smoke"):
        L += ["**Smoke run on %s with the offline tiny models: it checks that `bench/gpu.py` works; "
              "its figures measure nothing.**" % g["device"], ""]
    pk = g["matmul_peak_gflops"]
    L += ["%s; torch %s, diffusers %s. Matmul peak measured in the same run%s: bf16 %.0f, fp16 %.0f, "
          "fp32 %.0f GFLOP/s. it/s: UNet steps (CFG) per second over %d steps, with the fixed cost "
          "(text encoders, VAE decode) taken out, best of %d repeats (median in brackets); GFLOP "
          "from torch's flop counter (on CUDA it includes attention, on the CPU it does not, so "
          "the shares are not comparable across the two); peak GiB: generation once loaded and "
          "warm (load and cast peaks not included)."
          % (g["device"], g["torch"], g["diffusers"],
             " (of the first of %d parts; each row's share uses its own part's)" % g["parts"]
             if g.get("parts", 1) > 1 else "",
             pk["bf16"], pk["fp16"], pk["fp32"], g.get("steps", 10), g.get("repeats", 1)), "",
          "| model | size | config | optimize | it/s | vs default fp32 | vs default fp16 "
          "| % of bf16 peak | peak GiB | max pixel diff vs fp32 (/255) |",
          "|---|---|---|---|---|---|---|---|---|---|"]

    def num(x, fmt):
        return "" if x is None else fmt % x
    for r in g["runs"]:
        if "error" in r:
            L.append("| %s | %d | %s | | %s | | | | | |" % (r["family"], r["size"], r["config"],
                                                         r["error"][:60]))
            continue
        L.append("| %s | %d | %s | %s | %.2f%s | %s | %s | %.1f %% | %s | %s |" % (
            r["family"], r["size"], r["config"], r["optimize"], r["it_per_s"],
            num(r.get("it_per_s_median"), " (%.2f)"),
            num(r.get("ratio_vs_default_fp32"), "%.2fx"), num(r.get("ratio_vs_default_fp16"), "%.2fx"),
            r["pct_bf16_peak"], num(r.get("peak_mem_gib"), "%.1f"),
            num(r.get("max_abs_pixel_diff_vs_default_fp32"), "%.1f") + (" (NaN!)" if r["nan"] else "")))
    return L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="bench/work")
    ap.add_argument("--out", required=True)
    ap.add_argument("--gpu", nargs="*", default=None,
                    help="GPU result files to merge (default: every gpu*.json in --work)")
    a = ap.parse_args()
    w = a.work
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "versions": versions(),
           "load_start": open(os.path.join(w, "load_start.txt")).read().strip()
           if os.path.exists(os.path.join(w, "load_start.txt")) else None,
           "load_end": open(os.path.join(w, "load_end.txt")).read().strip()
           if os.path.exists(os.path.join(w, "load_end.txt")) else None,
           "fastpath": _read(os.path.join(w, "fastpath.json")),
           "bridge": _read(os.path.join(w, "bridge.json")),
           "cold_r": [_read(p) for p in sorted(glob.glob(os.path.join(w, "cold-r-*.json")))],
           "cold_py": [_read(p) for p in sorted(glob.glob(os.path.join(w, "cold-py-*.json")))],
           "full_r": [_read(p) for p in sorted(glob.glob(os.path.join(w, "mem-full-r-*.json")))],
           "full_py": [_read(p) for p in sorted(glob.glob(os.path.join(w, "mem-full-py-*.json")))],
           "gpu": _gpu(w, a.gpu)}
    with open(a.out + ".json", "w") as fh:
        json.dump(res, fh, indent=1)

    m, v = res["machine"], res["versions"]
    L = ["# rdiffusers benchmarks, %s" % res["date"], "",
         "Machine: %s, %s cores, %s GiB; bf16 CPU flags: %s. %s" % (
             m.get("cpu"), m.get("cores"), m.get("mem_gib"),
             ", ".join(m.get("bf16_flags") or []) or "none", m.get("platform")),
         "Versions: " + ", ".join("%s %s" % (k, x) for k, x in v.items()),
         "Load average (shared machine): start `%s`; end `%s`." % (res["load_start"], res["load_end"]),
         "All timings: minimum of repeats taken side by side, interleaved, in one run.", ""]
    fp = res["fastpath"]
    if fp:
        L += ["## 5. CPU fast path (full-size SD1.5-layout UNet, %sM params, random weights)" % fp["unet_params_M"], "",
              "One UNet step with CFG (batch 2) at %d^2 = %.0f GFLOP (torch.utils.flop_counter). "
              "Matmul peak measured in the same run: bf16 %.0f GFLOP/s, fp32 %.0f GFLOP/s; %d torch threads."
              % (fp["size"], fp["unet_step_gflop"], fp["matmul_peak_gflops"]["bf16"],
                 fp["matmul_peak_gflops"]["fp32"], fp["threads"]), "",
              "| variant | s/step (min) | median | speed-up vs fp32 | GFLOP/s | % of bf16 peak | UNet output max abs diff vs fp32 |",
              "|---|---|---|---|---|---|---|"]
        for r in fp["unet_step"]:
            L.append("| %s | %s | %s | %sx | %.0f | %.1f %% | %.3g |" % (
                r["variant"], f(r["s_per_step"]), f(r["median_s"]), f(r["speedup_vs_fp32"]),
                r["gflops"], r["pct_bf16_peak"], r["unet_out_max_abs_diff"]))
        if fp.get("compile_seconds"):
            L.append("\ntorch.compile (inductor, freezing) took %.0f s for the first call." % fp["compile_seconds"])
        att = fp.get("attention")
        if att and att.get("seconds"):
            need = att["needed_pct_of_bf16_peak"]
            L += ["", "Attention, which the GFLOP count leaves out (torch's flop counter does not count CPU "
                  "attention): the %d attention calls of one step (query [batch, heads, tokens, head dim]: %s), timed alone in the same run, take "
                  "%.3f s (%.1f GFLOP, %.0f GFLOP/s), %.0f %% of the package's step. A step at the 60 %% "
                  "target takes %.3f s; after attention, %.3f s are left for the %.0f counted GFLOP, which "
                  "would then have to run at **%s of the bf16 matmul peak** on average, with every other op "
                  "(norms, activations, copies) free." % (
                      att["calls"], "; ".join(att["shapes"]), att["seconds"], att["gflop"], att["gflops"],
                      100 * att["share_of_package_step"], att["target_s_per_step"],
                      att["left_for_counted_flops_s"], fp["unet_step_gflop"],
                      "%.0f %%" % need if need is not None else "more than 100 % (no time is left)")]
            if att.get("floor_s"):
                need_f = att["needed_pct_of_bf16_peak_at_floor"]
                rest = "; ".join("%s %.0f %%" % (k, v) for k, v in att["rest_pct_of_bf16_peak"].items())
                L += ["", "A floor for the step's exact attention at this machine's rates: its matmuls at the "
                      "matmul peak plus its %.2f G exponentials (one per query-key score) at the %.1f G/s of "
                      "torch's vectorised exp (in cache, %d threads) = %.3f s. Even with "
                      "attention at that floor, the counted GFLOP would need **%s of the bf16 peak**, "
                      "norms and activations free. With attention's time taken out, they now run at: %s." % (
                          att["exps"] / 1e9, att["exp_per_s"] / 1e9, fp["threads"], att["floor_s"],
                          "%.0f %%" % need_f if need_f is not None else "more than 100 %",
                          rest)]
        d = fp["drift"]
        L += ["", "Drift of `optimize = \"%s\"` from plain fp32 diffusers, full pipeline, same seed, %d steps at %d^2: "
              "pixels max |diff| %d/255, mean %.2f/255, %.2f %% of values differ by more than 2; "
              "latents max |diff| %.3g (latent std %.3g). Same call twice: %s." % (
                  d["mode"], d["steps"], d["size"], d["pixel_max_abs_0_255"], d["pixel_mean_abs_0_255"],
                  100 * d["pixel_share_changed_gt_2"], d["latent_max_abs"], d["latent_std"],
                  "identical pixels" if d["bf16_twice_identical"] else "DIFFERENT pixels"), ""]
    b = res["bridge"]
    if b:
        s = b["seconds_min"]
        o = b["overhead_parts_seconds"]
        L += ["## 1. Bridge overhead (warm; SD1.5-layout half-width UNet, %d^2, %d steps, optimize = \"%s\", %s threads)"
              % (b["size"], b["steps"], b["optimize"], b["torch_threads"]), "",
              "| call | s (min) | s (median) |", "|---|---|---|"]
        names = {"plain": "plain diffusers in Python (pipe(...) + PIL save)",
                 "api": "rdiffusers Python side (api.generate)",
                 "r": "sd_generate() from R, progress off",
                 "r_bar": "sd_generate() from R, progress bar",
                 "n4_one_call": "sd_generate(n = 4)",
                 "n4_four_calls": "4 x sd_generate(n = 1)"}
        for k, lab in names.items():
            L.append("| %s | %.3f | %.3f |" % (lab, s[k], b["seconds_median"][k]))
        L += ["", "**R / plain Python = %.4f** (median-based %.4f; target <= 1.02). Python side alone / plain = %.4f. "
              "R image identical to the plain diffusers image for the same seed: %s." % (
                  b["ratio_r_over_plain"], b["ratio_r_over_plain_median"], b["ratio_api_over_plain"],
                  b["r_and_plain_identical_pixels"]),
              "", "Where the difference goes (each timed alone: Python parts the min of 20 calls, R parts the mean of "
              "many, as R's clock ticks in ms): PNG encode %.1f ms "
              "(plain PIL save %.1f ms), pixel sha256 %.1f ms, R metadata write (png_write_meta) %.1f ms, "
              "R argument checks %.3f ms." % (1e3 * o["python_png_encode"], 1e3 * o["python_plain_pil_save"],
                                              1e3 * o["python_pixel_sha256"], 1e3 * o["r_png_write_meta"],
                                              1e3 * o["r_argument_checks"])
              + (" The R function Python calls after every step (Ctrl+C, progress): %.1f us a call, "
                 "%.2f ms for the %d steps of an image." % (
                     1e6 * o["r_step_callback"], 1e3 * o["r_step_callback"] * o["steps_per_image"],
                     o["steps_per_image"]) if "r_step_callback" in o else ""),
              "", "## 3. Batch and progress", "",
              "4 calls / one call with n = 4: %.4f%s (%d repeats each). Progress bar on / off: %.4f." % (
                  b["ratio_n4_four_calls_over_one_call"],
                  " (median-based %.4f, order alternating)" % b["ratio_n4_four_calls_over_one_call_median"]
                  if "ratio_n4_four_calls_over_one_call_median" in b else "",
                  len(b["seconds_all"]["n4_one_call"]), b["ratio_r_bar_over_r"])
              + (" With the tiny model (64^2, 2 steps), where a per-call cost would show: one call "
                 "with n = 4 %.0f ms, 4 calls %.0f ms (min of 15 each)." % (
                     1e3 * b["n4_tiny_seconds_min"]["one_call"],
                     1e3 * b["n4_tiny_seconds_min"]["four_calls"])
                 if "n4_tiny_seconds_min" in b else ""), ""]
    cr = [x for x in res["cold_r"] if x]
    cp = [x for x in res["cold_py"] if x]
    if cr and cp:
        mn = lambda xs, k: min(x[k] for x in xs)  # noqa: E731
        L += ["## 2. Cold vs warm (fresh process each, min of %d)" % len(cr), "",
              "| | start Python + import | model load | first call (load + generate) | second call |",
              "|---|---|---|---|---|",
              "| R (sd_generate) | %.2f | %.2f | %.2f | %.2f |" % (mn(cr, "python_start_s"), mn(cr, "load_seconds"),
                                                            mn(cr, "first_call_s"), mn(cr, "second_call_s")),
              "| Python (plain diffusers) | %.2f | %.2f | %.2f | %.2f |" % (
                  mn(cp, "python_start_s"), mn(cp, "load_seconds"), mn(cp, "first_call_s"), mn(cp, "second_call_s")),
              "", "The second call reuses the cached pipeline: its time is generation only.", "",
              "## 4. Memory (peak RSS, VmHWM, same job, fresh processes, min of %d)" % len(cr), ""]
        jobs = [("half-width SD1.5 layout (the job above)", cr, cp)]
        fr = [x for x in res["full_r"] if x]
        fp = [x for x in res["full_py"] if x]
        if fr and fp:
            jobs.append(("full-size SD1.5 layout, 512^2", fr, fp))
        L += ["| job | R process (MiB) | all R runs | Python process (MiB) | all Python runs | ratio |"
              " R before Python starts (MiB) | ratio without R's own footprint |",
              "|---|---|---|---|---|---|---|---|"]
        runs = lambda xs: ", ".join("%.0f" % x["peak_rss_mib"] for x in xs)  # noqa: E731
        for name, r_, p_ in jobs:
            rp, pp = mn(r_, "peak_rss_mib"), mn(p_, "peak_rss_mib")
            base = mn(r_, "r_baseline_rss_mib") if all("r_baseline_rss_mib" in x for x in r_) else float("nan")
            L.append("| %s | %.0f | %s | %.0f | %s | **%.3f** | %.0f | %.3f |" % (
                name, rp, runs(r_), pp, runs(p_), rp / pp, base, (rp - base) / pp))
        L += ["", "Target: ratio <= 1.10. The R process carries R itself and the packages rdiffusers "
              "loads before Python starts (most of it is the Matrix package, which reticulate loads: "
              "about 150 MiB), a fixed cost that weighs less the larger the model. Peak RSS also varies "
              "by about 100 MiB between identical runs (allocator and page-cache timing while the "
              "weights load), in both processes.", ""]
    L += ["## 6. GPU", ""]
    if res["gpu"]:
        L += gpu_section(res["gpu"])
    else:
        L.append("No GPU was available for this run. `bench/gpu.py` is ready to run on a CUDA machine "
                 "(`python bench/gpu.py --out gpu.json`, or `bash bench/run.sh`, which runs it when CUDA is present).")
    with open(a.out + ".md", "w") as fh:
        fh.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
