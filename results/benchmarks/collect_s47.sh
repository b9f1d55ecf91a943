#!/usr/bin/env bash
# Copy session 47's chain logs and JSONs (tagged with the code's commit) into results/benchmarks.
set -u
L=/tmp/s47/logs; D=/work/main/results/benchmarks; C=7ffbf41
cp $L/chain.log $D/chain_${C}_s47.log
for f in $L/*.log; do n=$(basename $f .log); [ $n = chain ] || cp $f $D/${n}_${C}_s47.log; done
for f in $L/*.json; do n=$(basename $f .json); cp $f $D/${n}_${C}_s47.json; done
cp /work/s47/results/benchmarks/schedules_vs_uniform_from0.json $D/schedules_vs_uniform_${C}_s47.json
cp /tmp/s47/ind_a/benchmarks/independence.json $D/independence_tome_uniform_${C}_s47.json
cp /tmp/s47/ind_b/benchmarks/independence.json $D/independence_evit_flat_${C}_s47.json
ls $D | grep _s47
