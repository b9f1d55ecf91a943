#!/usr/bin/env bash
# Session 44, after the diagnosis of vs_tome b1 0.6: the remaining latency cells on a4468cc (same clone, alone).
set -u
cd /work/s44
export PYTHONPATH=/work/s44 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s44/logs
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
run vs_tome_b8 python benchmarks/vs_tome.py --targets cpu_onnxruntime --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime.json $L/vs_tome_b8.json 2>/dev/null
run hw_vs_flops_b1 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime_b1 --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b1.json 2>/dev/null
run hw_vs_flops_b8 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b8.json 2>/dev/null
echo "== chain2 done $(date +%T)" >> $L/chain.log
