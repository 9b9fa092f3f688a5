#!/usr/bin/env bash
# A collective across two network hosts of two ranks each, flat against hierarchical (issue #13), on one machine:
# each host is a network namespace, joined to the other through a bridge, its outgoing link capped with tc tbf.
#
#   sudo [OP=allreduce|allgather|reducescatter|broadcast] bash bench/multihost_allreduce.sh [RATE=1gbit] [BYTES=67108864] [ITERS=5]
#
# Needs root and iproute2; build first (dotnet build -c Release src/HpcEngine.Cli). Prints both tables and a ratio.
set -euo pipefail
RATE=${1:-1gbit}
BYTES=${2:-67108864}
ITERS=${3:-5}
OP=${OP:-allreduce}
# Broadcast, allgather and reduce-scatter go hierarchical only with HPCENGINE_HIERARCHICAL=all.
HIER=$([ "$OP" = allreduce ] && echo 1 || echo all)
HPC=${HPC:-"dotnet $(pwd)/src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll"}
P=hpcb$$
OUT=$(mktemp -d)

cleanup() {
  for i in 0 1; do ip netns pids ${P}h$i 2>/dev/null | xargs -r kill -9 2>/dev/null || true; ip netns del ${P}h$i 2>/dev/null || true; done
  ip netns del ${P}hub 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

ip netns add ${P}hub
ip -n ${P}hub link add br0 type bridge
ip -n ${P}hub link set br0 up
for i in 0 1; do
  ip netns add ${P}h$i
  ip -n ${P}h$i link set lo up
  ip link add eth0 netns ${P}h$i type veth peer name p$i netns ${P}hub
  ip -n ${P}hub link set p$i master br0
  ip -n ${P}hub link set p$i up
  ip -n ${P}h$i addr add 198.18.0.$((i + 1))/24 dev eth0
  ip -n ${P}h$i link set eth0 up
  ip netns exec ${P}h$i tc qdisc replace dev eth0 root tbf rate "$RATE" burst 64kb latency 50ms
done

run() { # $1: HPCENGINE_HIERARCHICAL value, $2: json file
  for i in 0 1; do
    ip netns exec ${P}h$i env HPCENGINE_HIERARCHICAL=$1 $HPC launch --nnodes 2 --node-rank $i --nproc-per-node 2 \
      --master-addr 198.18.0.1 --master-port 29400 -- hpcengine bench collectives --op "$OP" \
      --min-bytes "$BYTES" --max-bytes "$BYTES" --warmup 2 --iters "$ITERS" --check --json "$2" > "$OUT/node$i.log" 2>&1 &
  done
  wait
  cat "$OUT/node0.log" | grep -v '^\[launch\]' || true
}

echo "== $OP flat (HPCENGINE_HIERARCHICAL=0), 2 hosts x 2 ranks, $RATE per host"
run 0 "$OUT/flat.json"
echo "== $OP hierarchical (auto), 2 hosts x 2 ranks, $RATE per host"
run "$HIER" "$OUT/hier.json"
python3 - "$OUT/flat.json" "$OUT/hier.json" <<'EOF'
import json, sys
f, h = (json.load(open(p))["results"][0] for p in sys.argv[1:3])
print(f"flat {f['algorithm']}: {f['time_us'] / 1e3:.1f} ms, busbw {f['busbw_gbps']:.3f} GB/s; "
      f"{h['algorithm']}: {h['time_us'] / 1e3:.1f} ms, busbw {h['busbw_gbps']:.3f} GB/s; "
      f"ratio {h['busbw_gbps'] / f['busbw_gbps']:.2f}x; wrong {f['wrong']} / {h['wrong']}")
EOF
