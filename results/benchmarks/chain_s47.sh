#!/usr/bin/env bash
# Session 47: the acceptance commands of issue 12 not yet run on the final code (7ffbf41; c9e6e9f adds notes only),
# in the clean clone /work/s47 (profiles and cost models copied from session 46's clone /work/s46b, same profile/fit code).
# Timed commands serially and alone on the CPU; then the quality-only GMACs commands two at a time on one thread each.
set -u
cd /work/s47
export PYTHONPATH=/work/s47 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s47/logs; mkdir -p $L
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
run hw_vs_flops_b8 python benchmarks/hw_vs_flops.py --targets cpu_onnxruntime --fractions 0.7
cp results/benchmarks/hw_vs_flops.json $L/hw_vs_flops_b8.json 2>/dev/null
run optimize_flops06 python -m hwsearch.cli optimize --flops-ratio 0.6
echo "== pair 1 $(date +%T): schedules_vs_uniform | independence tome,uniform (one thread each)" >> $L/chain.log
mkdir -p /tmp/s47/ind_a /tmp/s47/ind_b
OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/schedules_vs_uniform.py > $L/schedules_vs_uniform.log 2>&1 &
OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/independence.py --inits tome,uniform --out /tmp/s47/ind_a > $L/independence_a.log 2>&1 &
wait
cp results/benchmarks/schedules_vs_uniform.json $L/schedules_vs_uniform.json 2>/dev/null
echo "== pair 2 $(date +%T): independence evit,flat | gradient_vs_sampling (one thread each)" >> $L/chain.log
OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/independence.py --inits evit,flat --out /tmp/s47/ind_b > $L/independence_b.log 2>&1 &
OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/gradient_vs_sampling.py > $L/gradient_vs_sampling.log 2>&1 &
wait
cp results/benchmarks/gradient_vs_sampling.json $L/gradient_vs_sampling.json 2>/dev/null
echo "== pair done $(date +%T)" >> $L/chain.log
run vs_tome_b8 python benchmarks/vs_tome.py --targets cpu_onnxruntime --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime.json $L/vs_tome_b8.json 2>/dev/null
run vs_tome_b1 python benchmarks/vs_tome.py --targets cpu_onnxruntime_b1 --fractions 0.6,0.7
cp results/benchmarks/vs_tome_cpu_onnxruntime_b1.json $L/vs_tome_b1.json 2>/dev/null
echo "== chain done $(date +%T)" >> $L/chain.log
