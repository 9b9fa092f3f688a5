#!/usr/bin/env bash
# The #14 figures (bench/RESULTS.md, "Data pipeline"): preparation throughput (IDX and a PNG tree, 1 and 2 workers,
# byte-identical output), loader throughput against the in-memory IDX path, mlp trained from shards against the IDX
# run, and the tabular model against its majority baseline with raw rows scored through predict.
# usage: bench/data/pipeline.sh [FASHION_MNIST_DIR] [WORK_DIR]   (needs Debian's dataset-fashion-mnist by default)
set -euo pipefail
F=${1:-/usr/share/datasets/fashion-mnist}
W=${2:-$(mktemp -d /tmp/hpc-data-bench.XXXX)}
mkdir -p "$W"
cd "$(dirname "$0")/../.."
dotnet build src/HpcEngine.Cli -c Release -v q >/dev/null
H=(dotnet src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll)
echo '{"class_names": "fashion-mnist"}' > "$W/idx.json"
cat > "$W/png.json" <<'JSON'
{ "channels": 1, "split": { "mode": "given" },
  "transforms": [ { "op": "center-crop", "size": [28, 28] }, { "op": "to-float" }, { "op": "normalize" } ] }
JSON
echo "== preparation"
for w in 1 2; do "${H[@]}" data prepare --source "idx:$F" --out "$W/idx-w$w" --spec "$W/idx.json" --workers $w; done
"${H[@]}" data prepare --source "idx:$F" --out "$W/idx-w1" --spec "$W/idx.json"   # up to date
[ -d "$W/png" ] || python3 bench/data/idx_to_png_tree.py "$F" "$W/png"
for w in 1 2; do "${H[@]}" data prepare --source "images:$W/png" --out "$W/png-w$w" --spec "$W/png.json" --workers $w; done
cmp "$W/idx-w1/train-00000.shard" "$W/idx-w2/train-00000.shard" && cmp "$W/png-w1/train-00000.shard" "$W/png-w2/train-00000.shard" \
  && echo "shards byte-identical for 1 and 2 workers"
echo "== loader"
"${H[@]}" bench loader --data "$F" --dataset "$W/idx-w1" --iters 15
if /usr/bin/python3 -c "import torch" 2>/dev/null; then /usr/bin/python3 bench/peers/loader.py "$F" 15; else echo "peer skipped: python3-torch is not installed"; fi
echo "== mlp, IDX against shards"
"${H[@]}" train --model mlp --data "$F" --json "$W/train-idx.json" | tail -1
"${H[@]}" train --model mlp --dataset "$W/idx-w1" --json "$W/train-shards.json" | tail -1
"${H[@]}" train --model mlp --dataset "$W/png-w1" --json "$W/train-png.json" | tail -1
echo "== tabular"
python3 bench/data/make_table.py "$W/table.csv" 10000 0
"${H[@]}" data prepare --source "csv:$W/table.csv" --out "$W/table" --label label
"${H[@]}" train --model mlp --epochs 10 --batch-size 64 --dataset "$W/table" --checkpoint-dir "$W/table-ck" | tail -1
"${H[@]}" predict --checkpoint "$W/table-ck" --input "$W/table.csv" | tail -1
echo "work directory: $W"
