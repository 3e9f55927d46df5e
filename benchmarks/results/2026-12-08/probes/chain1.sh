#!/bin/bash
cd /work/main/benchmarks
P=results/2026-12-08/probes
for spec in "2 1 DS09-GCaMP6f-m-V1 ds09_named_k2" "2 0 DS32-GCaMP8s-m-V1 ds32_noind_k2" "2 0 DS09-GCaMP6f-m-V1 ds09_noind_k2" "4 1 DS32-GCaMP8s-m-V1 ds32_named_k4" "4 0 DS09-GCaMP6f-m-V1 ds09_noind_k4" "1 1 DS32-GCaMP8s-m-V1 ds32_named_k1"; do
  set -- $spec
  PYTHONPATH=/work/wt-a/src python $P/ds32_solver_probe.py $1 $2 $P/$4 $3 > $P/$4.log 2>&1
done
