#!/usr/bin/env bash
# Session 44: the latency cells on f728e6a (the search's end at measured parity), clean clone /work/s44b, serially,
# alone on the CPU, after the fresh-clone CI; profiles and cost models copied from session 43's clone.
set -u
until grep -q "^rc " /tmp/s44/logs/ci_b.log; do sleep 5; done
cd /work/s44b
export PYTHONPATH=/work/s44b HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s44/logs
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
echo "== chain3 (f728e6a) $(date +%T)" >> $L/chain.log
run vs_tome_b1_06_m python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1_06_m.json 2>/dev/null
python results/benchmarks/dense_ms_s42.py cpu_onnxruntime > $L/dense_ms_b8_m.log 2>&1
X=$(grep -o "X = [0-9.]*" $L/dense_ms_b8_m.log | cut -d' ' -f3)
echo "X=$X" >> $L/chain.log
run optimize_latency_b8_m python -m hwsearch.cli optimize --target cpu_onnxruntime --latency-ms $X
run vs_tome_b8_m python benchmarks/vs_tome.py --targets cpu_onnxruntime --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime.json $L/vs_tome_b8_m.json 2>/dev/null
run vs_tome_b1_07_m python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1_07_m.json 2>/dev/null
run hw_vs_flops_b1_m python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime_b1 --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b1_m.json 2>/dev/null
echo "== chain3 done $(date +%T)" >> $L/chain.log
