#!/usr/bin/env bash
# Session 46, final code (cceafbe: every miss rescales, never searches again), after vs_tome batch 8 on be979c8
# (chain_s46.sh, stopped before its hw_vs_flops batch 8: no time left in the session for it): optimize --latency-ms X,
# then the fresh-clone CI; serially, alone on the CPU, in the clean clone /work/s46b (profiles and cost models as chain_s46.sh).
set -u
while pgrep -f "benchmarks/vs_tome.py" > /dev/null; do sleep 5; done
cd /work/s46b
export PYTHONPATH=/work/s46b HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s46/logs_b; mkdir -p $L
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
python results/benchmarks/dense_ms_s42.py cpu_onnxruntime > $L/dense_ms_b8.log 2>&1
X=$(grep -o "X = [0-9.]*" $L/dense_ms_b8.log | cut -d' ' -f3)
echo "X=$X" >> $L/chain.log
run optimize_latency_b8 python -m hwsearch.cli optimize --target cpu_onnxruntime --latency-ms $X
rm -rf /tmp/s46ci2 && git clone -q /work/s46b /tmp/s46ci2
(cd /tmp/s46ci2 && bash .ci/run > $L/ci.log 2>&1; echo "rc=$?" >> $L/ci.log)
echo "== chain done $(date +%T)" >> $L/chain.log
