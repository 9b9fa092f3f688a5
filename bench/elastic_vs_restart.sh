#!/bin/bash
# Issue #19: time to finish a 4-worker mlp run (15 epochs, embedded data) when one worker is SIGKILLed 3.5 s in:
# clean (no fault), elastic (launch --elastic: survivors go on), restart (torchrun-style: --max-restarts 1, every
# worker restarted from the last epoch checkpoint). Usage: bash bench/elastic_vs_restart.sh clean|elastic|restart
# (build first: dotnet build -c Release src/HpcEngine.Cli).
# $1: mode (elastic|restart|clean)
H="dotnet $(pwd)/src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll"
D=$(mktemp -d)
start=$(date +%s.%N)
if [ "$1" = restart ]; then
  $H launch --max-restarts 1 --nproc-per-node 4 -- hpcengine train --model mlp --epochs 15 --checkpoint-dir $D/ck --resume-if-exists --json $D/r.json > $D/log 2>&1 &
else
  $H launch --elastic --nproc-per-node 4 -- hpcengine train --model mlp --epochs 15 --json $D/r.json > $D/log 2>&1 &
fi
L=$!
if [ "$1" != clean ]; then
  sleep 3.5
  victim=$(pgrep -n -f 'hpcengine.dll train')
  kill -9 $victim
fi
wait $L; rc=$?
end=$(date +%s.%N)
python3 -c "
import json; d=json.load(open('$D/r.json')); print('$1', 'rc=$rc', 'wall %.2f s' % ($end-$start), 'acc', d.get('final_test_accuracy'), 'train_time_s %.2f' % d['train_time_s'], 'steps', d['steps'], [(m['kind'],m['rank'],m['step'],round(m['recovery_ms'])) for m in d.get('membership') or []])"
grep -c "restarting all workers" $D/log
rm -rf $D
