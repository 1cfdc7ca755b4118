#!/usr/bin/env bash
# Runs every benchmark and writes bench/results/<date>-cpu.{md,json}
# (with the GPU section filled in on a machine with CUDA).
#
#   bash bench/run.sh            # full run (about 15-25 min on 2 cores)
#   QUICK=1 bash bench/run.sh    # fewer repeats, smaller sizes (a smoke test)
#
# Env: RDIFFUSERS_PYTHON (the Python with torch + diffusers; default python3),
#      BENCH_THREADS (torch threads, default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${RDIFFUSERS_PYTHON:-python3}"
export RDIFFUSERS_PYTHON="$PY"
export RDIFFUSERS_TORCH_THREADS="${BENCH_THREADS:-$(nproc)}"
export BENCH_THREADS="$RDIFFUSERS_TORCH_THREADS"
WORK=bench/work
mkdir -p "$WORK" bench/results
STAMP="$(date -u +%Y-%m-%d)"
if [ -n "${QUICK:-}" ]; then
  REPS=2; FP_SIZE=256; BR_SIZE=128; BR_STEPS=2; FP_ARGS="--drift-size 256 --drift-steps 2"
else
  # Drift over as many steps as real use takes (it grows with the steps).
  REPS=${BENCH_REPS:-4}; FP_SIZE=512; BR_SIZE=256; BR_STEPS=4
  FP_ARGS="--drift-size 512 --drift-steps 20 --compile"
fi
uptime > "$WORK/load_start.txt"

echo "== installing the working tree into $WORK/lib (the R benchmarks load it like users do)"
mkdir -p "$WORK/lib"
R CMD INSTALL --no-test-load -l "$WORK/lib" . > "$WORK/install.log" 2>&1 || {
  cat "$WORK/install.log"; exit 1; }
export R_LIBS="$PWD/$WORK/lib${R_LIBS:+:$R_LIBS}"

echo "== building random-weight models (once)"
"$PY" bench/build_models.py --family sd15 --out "$WORK"
"$PY" bench/build_models.py --family sd15-half --out "$WORK"

echo "== 5. CPU fast path"
"$PY" bench/cpu_fastpath.py --model "$WORK/sd15-random" --size "$FP_SIZE" --reps "$REPS" \
  $FP_ARGS --json "$WORK/fastpath.json"

echo "== 1 + 3. bridge overhead, batch, progress"
# Generation at 256^2 takes seconds, and run-to-run noise on a shared 2-core
# machine is several percent: the bridge needs many repeats to resolve 2 %.
Rscript bench/bridge.R "$WORK/sd15-half-random" "$BR_SIZE" "$BR_STEPS" "$((REPS * 3))" \
  "$WORK/bridge.json"

echo "== 2 + 4. cold vs warm, peak memory (fresh processes, alternating)"
# Peak RSS varies by +-100 MiB from run to run (allocator and page-cache
# timing during the load): three fresh processes of each, min reported.
for i in 1 2 3; do
  Rscript bench/cold.R "$WORK/sd15-half-random" "$BR_SIZE" "$BR_STEPS" "$WORK/cold-r-$i.json"
  "$PY" bench/cold.py "$WORK/sd15-half-random" "$BR_SIZE" "$BR_STEPS" "$WORK/cold-py-$i.json"
done

echo "== 4. peak memory on the full-size SD1.5 layout (512^2, 2 steps)"
for i in 1 2 3; do
  Rscript bench/cold.R "$WORK/sd15-random" 512 2 "$WORK/mem-full-r-$i.json"
  "$PY" bench/cold.py "$WORK/sd15-random" 512 2 "$WORK/mem-full-py-$i.json"
done

if command -v nvidia-smi >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(not torch.cuda.is_available())'; then
  echo "== 6. GPU"
  "$PY" bench/gpu.py --out "$WORK/gpu.json"
fi
uptime > "$WORK/load_end.txt"

"$PY" bench/report.py --work "$WORK" --out "bench/results/$STAMP-cpu"
echo "wrote bench/results/$STAMP-cpu.md"
