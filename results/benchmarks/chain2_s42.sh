#!/usr/bin/env bash
set -u
until grep -q "ci rc" /tmp/s42/logs/chain.log; do sleep 5; done
cd /work/s42
export PYTHONPATH=/work/s42 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s42/logs
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
run vs_tome_b1_06 python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1_06.json 2>/dev/null
run optimize_flops06 python -m hwsearch.cli optimize --flops-ratio 0.6
echo "== chain2 done $(date +%T)" >> $L/chain.log
