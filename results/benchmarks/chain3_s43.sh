#!/usr/bin/env bash
# Session 43, after the review request: the session-42 acceptance commands that fit the time left, on a519e34.
set -u
cd /work/s43
export PYTHONPATH=/work/s43 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s43/logs
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
rm -rf results/cpu_onnxruntime*/vit_small_patch14_dinov2/{schedules,report,.lock}
run optimize_flops06 python -m hwsearch.cli optimize --flops-ratio 0.6
python results/benchmarks/dense_ms_s42.py cpu_onnxruntime > $L/dense_ms_b8.log 2>&1
X=$(grep -o "X = [0-9.]*" $L/dense_ms_b8.log | cut -d' ' -f3)
echo "X=$X" >> $L/chain.log
run optimize_latency_b8 python -m hwsearch.cli optimize --target cpu_onnxruntime --latency-ms $X
run vs_tome_b1_06 python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1_06.json 2>/dev/null
echo "== chain3 done $(date +%T)" >> $L/chain.log
