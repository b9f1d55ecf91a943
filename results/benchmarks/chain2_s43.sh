#!/usr/bin/env bash
# Session 43: the GMACs-only acceptance commands on a519e34 (quality only), after chain.sh.
set -u
until grep -q "chain done" /tmp/s43/logs/chain.log; do sleep 5; done
cd /work/s43
export PYTHONPATH=/work/s43 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s43/logs
run() { name=$1; shift; echo "== $name $(date +%T): $*" >> $L/chain.log
        /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "== $name done rc $? $(date +%T)" >> $L/chain.log; }
run schedules_vs_uniform python benchmarks/schedules_vs_uniform.py
cp results/benchmarks/schedules_vs_uniform.json $L/schedules_vs_uniform.json 2>/dev/null
mkdir -p /tmp/s43/ind_a /tmp/s43/ind_b
echo "== independence $(date +%T): two processes, one thread each" >> $L/chain.log
OMP_NUM_THREADS=1 python benchmarks/independence.py --inits tome,uniform --out /tmp/s43/ind_a > $L/independence_a.log 2>&1 &
OMP_NUM_THREADS=1 python benchmarks/independence.py --inits evit,flat --out /tmp/s43/ind_b > $L/independence_b.log 2>&1 &
wait
echo "== independence done $(date +%T)" >> $L/chain.log
run headroom python benchmarks/headroom.py --minutes 30
cp results/benchmarks/headroom.json $L/headroom.json 2>/dev/null
echo "== chain2 done $(date +%T)" >> $L/chain.log
