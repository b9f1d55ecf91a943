#!/usr/bin/env bash
# Session 45 acceptance runs of the latency path on 83e8fc1 (a hand schedule always rescaled; a moved schedule must
# beat its hand start on every search photo), serially, alone on the CPU (after the fresh-clone CI), in the clean
# clone /work/s45 (profiles and cost models of both targets copied from session 44's clone: profile/fit unchanged).
set -u
while ! grep -q "^rc=" /tmp/s45/ci.log 2>/dev/null; do sleep 10; done
cd /work/s45
export PYTHONPATH=/work/s45 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s45/logs; mkdir -p $L
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
python results/benchmarks/dense_ms_s42.py cpu_onnxruntime > $L/dense_ms_b8.log 2>&1
X=$(grep -o "X = [0-9.]*" $L/dense_ms_b8.log | cut -d' ' -f3)
echo "X=$X" >> $L/chain.log
run optimize_latency_b8 python -m hwsearch.cli optimize --target cpu_onnxruntime --latency-ms $X
run vs_tome_b1 python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1.json 2>/dev/null
run vs_tome_b8 python benchmarks/vs_tome.py --targets cpu_onnxruntime --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime.json $L/vs_tome_b8.json 2>/dev/null
run hw_vs_flops_b1 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime_b1 --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b1.json 2>/dev/null
run hw_vs_flops_b8 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b8.json 2>/dev/null
echo "== chain done $(date +%T)" >> $L/chain.log
