#!/usr/bin/env bash
# Session 47, after chain2_s47.sh: headroom.py on the final code with the 8 minutes left in the session
# (the acceptance allows <= 30; session 43's run used 30), alone on the CPU.
set -u
until grep -q "chain2 done" /tmp/s47/logs/chain.log; do sleep 5; done
cd /work/s47
export PYTHONPATH=/work/s47 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=/tmp/s47/logs
echo "== headroom $(date +%T): python benchmarks/headroom.py --minutes 8" >> $L/chain.log
/usr/bin/time -v python benchmarks/headroom.py --minutes 8 > $L/headroom.log 2>&1
echo "== headroom done rc $? $(date +%T)" >> $L/chain.log
cp results/benchmarks/headroom.json $L/headroom.json 2>/dev/null
