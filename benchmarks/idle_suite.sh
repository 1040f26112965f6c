#!/usr/bin/env bash
# Issue 23's benchmarks, for an IDLE machine: about 10 minutes (at most 15 min 30 s: every step has a time limit).
# Appends one section to benchmarks/RESULTS.md: the CPU (lscpu model name, avx2 / avx512_bf16 / amx flags),
# the load (/proc/loadavg) before each step, and each benchmark's output.
#
#   benchmarks/idle_suite.sh                       # PYTHON defaults to .venv/bin/python
#   OFFICIAL_MAE=/path/to/facebookresearch-mae benchmarks/idle_suite.sh   # adds the official model's step
#   IDLE_SUITE_SHORT=1 RESULTS=/tmp/r.md benchmarks/idle_suite.sh          # seconds per step: proves it runs
#
# The project's slower machine kind is an AVX2-only CPU (AMD Zen 2, no native bf16). On a CPU with AVX-512
# the suite emulates it: every benchmark runs with MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
# ONEDNN_MAX_CPU_ISA=AVX2 (MKL's sgemm, torch's vectorised kernels and oneDNN limited to AVX2), in float32;
# step 1 shows whether that took effect (torch's capability and the fp32 matmul rate with and without).
# It emulates the instruction set only, not Zen 2's clock, caches or memory.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH=$PWD MPLBACKEND=Agg
unset OMP_NUM_THREADS MKL_NUM_THREADS
AVX2=(env MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)
REPORT=$(mktemp)
RESULTS=${RESULTS:-benchmarks/RESULTS.md}
SHORT=${IDLE_SUITE_SHORT:-}
if [ -n "$SHORT" ]; then  # every benchmark at its smallest: a check that the suite runs, no figures
    STEP_ARGS=(--presets tiny --steps 1 --warmup 1); DATA_ARGS=(--short --presets tiny)
    SHARED_ARGS=(--seconds 2 --preset tiny); DEMO_ARGS=(--only synthetic-ks); KERNEL_ARGS=(--short --presets tiny)
else
    STEP_ARGS=(--presets tiny ipol64 --steps 10 --warmup 2); DATA_ARGS=(); SHARED_ARGS=(--seconds 60); DEMO_ARGS=()
    KERNEL_ARGS=()
fi
START=$(date +%s)
flag() { grep -qw "$1" /proc/cpuinfo && echo yes || echo no; }

# step NAME LIMIT_S COMMAND...: the load before, the command's output (or its time-out), its wall time
step() {
    local name=$1 limit=$2
    shift 2
    local t0 out rc
    t0=$(date +%s)
    echo "[idle_suite] $name (at most ${limit} s)" >&2
    out=$(timeout "$limit" "$@" 2>&1)
    rc=$?
    {
        echo
        echo "#### $name"
        echo
        echo "load before: \`$(cat /proc/loadavg)\`; wall $(( $(date +%s) - t0 )) s; exit status $rc$([ $rc = 124 ] && echo " (time limit ${limit} s)")"
        echo
        echo '```'
        echo "$out" | grep -v -e '^USDT' -e 'gpuGetDeviceCount' | tail -n 40
        echo '```'
    } >> "$REPORT"
}

{
    echo
    echo "## Issue 23 idle-machine suite, $(date -u '+%Y-%m-%d %H:%M') UTC${SHORT:+ (SHORT MODE: no figures)}"
    echo
    echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; flags: avx2 $(flag avx2), avx512f $(flag avx512f), avx512_bf16 $(flag avx512_bf16), amx_bf16 $(flag amx_bf16)"
    echo "- load at the start: \`$(cat /proc/loadavg)\`; torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
    echo "- every step below runs with \`MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2\`"
    echo "  (the AVX2-only machine kind's instruction set), float32 (the demo with \`--precision auto\` seeing no"
    echo "  bf16, as on that kind); step 1 checks the emulation. Clock, caches and memory are this machine's."
} >> "$REPORT"

# 1. the emulation: torch's capability and the fp32 matmul rate, native and limited to AVX2
step "1. AVX2 emulation check: native, then limited to AVX2" 40 \
    bash -c "$PY benchmarks/train_throughput.py --matmul-only --device cpu && \
             ${AVX2[*]} $PY benchmarks/train_throughput.py --matmul-only --device cpu"

# 2. the model step: maelens eager / fused attention vs the official models_mae, interleaved in one process,
#    with the fraction of the fp32 matmul rate measured in that process
MODES=(eager fused)
OFFICIAL_ARGS=()
if [ -n "${OFFICIAL_MAE:-}" ]; then
    MODES+=(official)
    OFFICIAL_ARGS=(--official-repo "$OFFICIAL_MAE")
fi
step "2. model step, fp32 (benchmarks/train_throughput.py)" 160 \
    "${AVX2[@]}" "$PY" benchmarks/train_throughput.py --modes "${MODES[@]}" "${STEP_ARGS[@]}" "${OFFICIAL_ARGS[@]}"

# 2b. which attention kernel the trainer should use in float32 (1 thread, CPU time: eager / fused)
step "2b. attention kernel in a float32 step (benchmarks/attention_kernel.py)" 120 \
    "${AVX2[@]}" "$PY" benchmarks/attention_kernel.py --precisions fp32 "${KERNEL_ARGS[@]}"

# 3. the data path: maelens train end to end vs the bare step (device batches, and the former DataLoader)
step "3. end-to-end training vs the bare step (benchmarks/data_path.py)" 150 \
    "${AVX2[@]}" "$PY" benchmarks/data_path.py "${DATA_ARGS[@]}"

# 4. sharing the machine: beside a busy loop, n threads fixed vs the thread governor, relative to idle
step "4. training beside a busy process (benchmarks/shared_machine.py)" 240 \
    "${AVX2[@]}" "$PY" benchmarks/shared_machine.py "${SHARED_ARGS[@]}"

# 5. make demo, from scratch, as the AVX2 kind runs it (fp32)
step "5. make demo from scratch (benchmarks/demo_timing.py --no-bf16)" 220 \
    "${AVX2[@]}" "$PY" benchmarks/demo_timing.py --no-bf16 "${DEMO_ARGS[@]}"

echo >> "$REPORT"
echo "Suite wall time: $(( $(date +%s) - START )) s; load at the end: \`$(cat /proc/loadavg)\`." >> "$REPORT"
cat "$REPORT" >> "$RESULTS"
cat "$REPORT"
rm -f "$REPORT"
