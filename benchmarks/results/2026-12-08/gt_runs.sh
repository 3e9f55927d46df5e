#!/bin/bash
# the ground truth with per-trace decays (commit 2b42f6b, worktree /work/wt-b); two at once
cd /work/wt-b/benchmarks
R=/work/main/benchmarks/results/2026-12-08
G=/work/shared/groundtruth
export OMP_NUM_THREADS=1 PYTHONPATH=/work/wt-b/src
( python groundtruth_spikes.py --gt-dir $G --datasets DS06-GCaMP6f-zf-aDp DS07-GCaMP6f-zf-dD DS11-GCaMP6f-m-V1-neuropil-corrected --no-indicator --k 1 2 4 --run '{"max_seconds":200}' --out $R/gt_report_noind_a > $R/gt_report_noind_a.log 2>&1 ) &
( python groundtruth_spikes.py --gt-dir $G --datasets DS13-GCaMP6s-m-V1-neuropil-corrected DS14-GCaMP6s-m-V1 --no-indicator --k 1 2 4 --run '{"max_seconds":200}' --out $R/gt_report_noind_b > $R/gt_report_noind_b.log 2>&1
  python groundtruth_spikes.py --gt-dir $G --datasets DS32-GCaMP8s-m-V1 --k 2 4 1 --run '{"max_seconds":200}' --out $R/gt_ds32_named > $R/gt_ds32_named.log 2>&1 ) &
wait
