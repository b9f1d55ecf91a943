#!/usr/bin/env bash
# Session 44: the search again held against the hand start (a1933ad): vs_tome batch 1 at 0.6 (the cell that
# missed twice), optimize --latency-ms X, then the fresh-clone CI; clean clone /work/s44c, serially, alone.
set -u
cd /work/s44c
export PYTHONPATH=/work/s44c HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s44/logs
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
echo "== chain4 (a1933ad) $(date +%T)" >> $L/chain.log
run vs_tome_b1_06_h python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1_06_h.json 2>/dev/null
python results/benchmarks/dense_ms_s42.py cpu_onnxruntime > $L/dense_ms_b8_h.log 2>&1
X=$(grep -o "X = [0-9.]*" $L/dense_ms_b8_h.log | cut -d' ' -f3)
echo "X=$X" >> $L/chain.log
run optimize_latency_b8_h python -m hwsearch.cli optimize --target cpu_onnxruntime --latency-ms $X
echo "== ci $(date +%T)" >> $L/chain.log
(cd /tmp/ci44c && bash .ci/run > $L/ci_c.log 2>&1; echo "rc $?" >> $L/ci_c.log)
echo "== chain4 done $(date +%T)" >> $L/chain.log
