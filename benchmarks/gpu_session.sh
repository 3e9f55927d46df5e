#!/usr/bin/env bash
# One call on a lent GPU machine (RESULTS.md, "On a GPU"): the CUDA tests, then throughput and
# quality of the defaults on CUDA beside the same machine's CPU. Each step has its own time
# limit (about 500 s in all, inside the device tool's 600 s per call); its log goes to
# $OUT/session.log as it ends and the JSON rows so far are packed into $OUT/json.tar.gz after
# every step, so a step that fails or runs out leaves the others' numbers. Run from the repository root:
#
#     OUT=/tmp/gpu bash benchmarks/gpu_session.sh
#
# Wheels of packages the machine lacks (oasis-deconv, for the held-out verdict and OASIS's
# numbers) may travel in .whl/; they are installed into /tmp/site first.
set -u
OUT=${OUT:-/tmp/gpu_session}
J=/tmp/gpu_session_json   # the JSON rows; packed into one file after each step ($OUT brings back 8)
rm -rf "$J"   # a rerun on the same machine starts clean (the demo refuses an existing folder)
mkdir -p "$OUT" "$J"
LOG="$OUT/session.log"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $LOG, say how it ended
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS rc
    echo "=== $name (limit ${limit}s, load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$LOG"
    timeout -k 10 "$limit" "$@" >"$J/$name.log" 2>&1
    rc=$?
    cat "$J/$name.log" >>"$LOG"
    echo "=== $name: rc $rc in $((SECONDS - t0)) s" | tee -a "$LOG"
    grep -E "^\|" "$J/$name.log" | tail -n 8
    tail -n 3 "$J/$name.log"
    cp "$J"/demo_cuda/*.json "$J/" 2>/dev/null
    (cd "$J" && compgen -G "*.json" >/dev/null && tar -czf "$OUT/json.tar.gz" *.json)
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'numpy', numpy.__version__)"
  nproc; } 2>&1 | tee "$LOG"

step tests "${GPU_TESTS_S:-75}" python3 -m pytest -q -p no:cacheprovider -o addopts="" \
    tests/model/test_unroll.py tests/model/test_checkpoint.py tests/model/test_calcium.py
step throughput_cuda "${GPU_THROUGHPUT_S:-100}" python3 benchmarks/throughput.py --device cuda \
    --cases calcium poisson --repeats 2 --epochs 5 --out "$J/throughput_cuda.json"
step throughput_cpu "${CPU_THROUGHPUT_S:-60}" python3 benchmarks/throughput.py --device cpu \
    --impl fused --cases calcium poisson --repeats 2 --epochs 5 --out "$J/throughput_cpu.json"
step large_cuda "${GPU_LARGE_S:-50}" python3 benchmarks/throughput.py --device cuda --impl fused \
    --cases large --repeats 1 --epochs 4 --out "$J/large_cuda.json"
step large_cpu "${CPU_LARGE_S:-50}" python3 benchmarks/throughput.py --device cpu --impl fused \
    --cases large --repeats 1 --epochs 2 --out "$J/large_cpu.json"
step protocol_b29_cuda "${GPU_PROTOCOL_S:-100}" python3 benchmarks/sbtt_demo_protocol.py \
    --bandwidths 29 --seed 0 --set 'device="cuda"' --out "$J/protocol_b29_cuda.json"
step demo_cuda "${GPU_DEMO_S:-70}" python3 -m napari_sbtt.cli demo --device cuda \
    --out "$J/demo_cuda"
