#!/usr/bin/env bash
# Session 47, after chain_s47.sh was stopped once vs_tome batch 8 had started (its batch-1 run, 0.6 and 0.7, would
# not finish in the session): vs_tome batch 1 at 0.7 only (session 46's 0.7 cell missed and searched again on be979c8;
# the final code rescales there), alone on the CPU after batch 8.
set -u
while pgrep -f "benchmarks/vs_tome.py --targets cpu_onnxruntime " > /dev/null; do sleep 5; done
cd /work/s47
export PYTHONPATH=/work/s47 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s47/logs
cp results/benchmarks/vs_tome_cpu_onnxruntime.json $L/vs_tome_b8.json 2>/dev/null
echo "== vs_tome_b8 done $(date +%T) (chain stopped; copied here)" >> $L/chain.log
echo "== vs_tome_b1_07 $(date +%T): python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.7" >> $L/chain.log
/usr/bin/time -v python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.7 > $L/vs_tome_b1_07.log 2>&1
echo "== vs_tome_b1_07 done rc $? $(date +%T)" >> $L/chain.log
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1_07.json 2>/dev/null
echo "== chain2 done $(date +%T)" >> $L/chain.log
