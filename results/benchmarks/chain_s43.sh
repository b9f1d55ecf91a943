#!/usr/bin/env bash
# Session 43 acceptance runs, serially, alone on the CPU, in the clean clone /work/s43 (a519e34).
set -u
cd /work/s43
export PYTHONPATH=/work/s43 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s43/logs; mkdir -p $L
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
run vs_tome_b1_07 python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1_07.json 2>/dev/null
run gradient_vs_sampling python benchmarks/gradient_vs_sampling.py
cp results/benchmarks/gradient_vs_sampling.json $L/gradient_vs_sampling.json 2>/dev/null
echo "== chain done $(date +%T)" >> $L/chain.log
