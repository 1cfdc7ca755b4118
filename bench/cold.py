"""Benchmarks 2 and 4 (Python side): the same job as bench/cold.R with plain
diffusers in a fresh Python process: import, load, generate, generate again;
times of each phase and the peak RSS (VmHWM) of the process.

    python bench/cold.py <model_dir> <size> <steps> <out.json>
"""
import json
import os
import sys
import time

t0 = time.perf_counter()
model_dir, size, steps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import torch  # noqa: E402
import diffusers  # noqa: E402

threads = os.environ.get("RDIFFUSERS_TORCH_THREADS")
if threads:
    torch.set_num_threads(int(threads))
t_import = time.perf_counter()
pipe = diffusers.StableDiffusionPipeline.from_pretrained(model_dir, safety_checker=None,
                                                         requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
t_load = time.perf_counter()


def gen(seed, path):
    img = pipe(prompt="a lighthouse on a cliff at dawn, oil painting", negative_prompt="blurry",
               num_inference_steps=steps, guidance_scale=7.5, width=size, height=size,
               generator=torch.Generator("cpu").manual_seed(seed)).images[0]
    img.save(path)


import tempfile  # noqa: E402
d = tempfile.mkdtemp()
gen(1, os.path.join(d, "1.png"))
t_first = time.perf_counter()
gen(2, os.path.join(d, "2.png"))
t_second = time.perf_counter()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
res = {"side": "python", "python_start_s": t_import - t0, "load_seconds": t_load - t_import,
       "first_call_s": t_first - t_import, "second_call_s": t_second - t_first,
       "peak_rss_mib": int(hwm.split()[1]) / 1024}
with open(out, "w") as f:
    json.dump(res, f, indent=1)
