#!/bin/bash
# Protocol 1 at b = 29 on the tune seeds: the poisson defaults (sample_validation 0.1) against
# sample_validation 0 (every observed training entry used; the validation trials, which drive
# early stopping, then score 0.2 of theirs), alternating, one run at a time.
# run from /work/main/benchmarks/results/2026-12-08 with a worktree of the commit at /work/wt-a
set -u
B=${B:-29}
for s in ${SEEDS:-1 2 3 4 5 6 7 8}; do
  for v in def sv0; do
    if [ $v = def ]; then extra=""; else extra="--set sample_validation=0"; fi
    PYTHONPATH=/work/wt-a/src OMP_NUM_THREADS=1 python /work/wt-a/benchmarks/sbtt_demo_protocol.py \
      --seed $s --bandwidths $B $extra --out lorenz_sv_b${B}_s${s}_${v}.json | tail -1 | sed "s/^/seed $s $v: /"
  done
done
