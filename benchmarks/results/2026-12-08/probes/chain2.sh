#!/bin/bash
cd /work/main/benchmarks
P=results/2026-12-08/probes
export PYTHONPATH=/work/main/src
for spec in "2 1 DS32-GCaMP8s-m-V1" "2 1 DS09-GCaMP6f-m-V1" "2 0 DS13-GCaMP6s-m-V1-neuropil-corrected"; do
  python $P/trace_decay_heldout_probe.py $spec >> $P/trace_decay_heldout.jsonl 2>> $P/trace_decay_heldout.err
done
