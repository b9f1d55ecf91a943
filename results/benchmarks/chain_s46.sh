#!/usr/bin/env bash
# Session 46 (auto rates: DDP on the measured cost, then DDP priced by GMACs from the same start where it lost),
# after the fresh-clone CI: hw_vs_flops batch 1 (the floor that missed in session 45), vs_tome batch 1,
# optimize --latency-ms X, vs_tome batch 8, hw_vs_flops batch 8; serially, alone on the CPU, in the clean clone
# /work/s46 (profiles and cost models copied from session 45's clone /work/s45b).
set -u
while ! grep -q "^rc=" /tmp/s46/ci.log 2>/dev/null; do sleep 10; done
cd /work/s46
export PYTHONPATH=/work/s46 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s46/logs; mkdir -p $L
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
run hw_vs_flops_b1 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime_b1 --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b1.json 2>/dev/null
run vs_tome_b1 python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1.json 2>/dev/null
python results/benchmarks/dense_ms_s42.py cpu_onnxruntime > $L/dense_ms_b8.log 2>&1
X=$(grep -o "X = [0-9.]*" $L/dense_ms_b8.log | cut -d' ' -f3)
echo "X=$X" >> $L/chain.log
run optimize_latency_b8 python -m hwsearch.cli optimize --target cpu_onnxruntime --latency-ms $X
run vs_tome_b8 python benchmarks/vs_tome.py --targets cpu_onnxruntime --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime.json $L/vs_tome_b8.json 2>/dev/null
run hw_vs_flops_b8 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b8.json 2>/dev/null
echo "== chain done $(date +%T)" >> $L/chain.log
