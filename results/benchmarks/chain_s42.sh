#!/usr/bin/env bash
# Session 42 acceptance runs, serially, alone on the CPU, in the clean clone /work/s42.
set -u
cd /work/s42
export PYTHONPATH=/work/s42 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s42/logs; mkdir -p $L
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
run hw_vs_flops_b8 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b8.json 2>/dev/null
run vs_tome_b8 python benchmarks/vs_tome.py --targets cpu_onnxruntime --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime.json $L/vs_tome_b8.json 2>/dev/null
python /tmp/s42/dense_ms_s42.py cpu_onnxruntime > $L/dense_ms_b8.log 2>&1
X=$(grep -o "X = [0-9.]*" $L/dense_ms_b8.log | cut -d' ' -f3)
echo "X=$X" >> $L/chain.log
run optimize_latency_b8 python -m hwsearch.cli optimize --target cpu_onnxruntime --latency-ms $X
run hw_vs_flops_b1 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime_b1 --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b1.json 2>/dev/null
run vs_tome_b1 python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1.json 2>/dev/null
run optimize_flops06 python -m hwsearch.cli optimize --flops-ratio 0.6
run gradient_vs_sampling python benchmarks/gradient_vs_sampling.py
cp results/benchmarks/gradient_vs_sampling.json $L/gradient_vs_sampling.json 2>/dev/null
echo "== all done $(date +%T)" >> $L/chain.log
