#!/usr/bin/env bash
# Recipe study for the labels-only network (issue #10): one project on the study's protocol (per CIFAR-10
# class, files sorted by name: the first 800 imported, the first 80 labelled, the last 200 held out), then one
# `contrast finetune --supervised` run per arm at a fixed epoch count, so arms compare by what they learn and not
# by how busy the machine was. Each arm appends a line to docs/study/recipe.jsonl.
#   npm run bench:recipe -- 'default=--epochs 30' 'lr2x=--epochs 30 --lr 1.13' ...
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CIFAR="${TMPDIR:-/tmp}/cifar/train"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/contrast-recipe-XXXX")"
export RESULTS="${RESULTS:-$ROOT/docs/study/recipe.jsonl}"
contrast() { node "$ROOT/bin/contrast.js" "$@"; }
if [ ! -d "$CIFAR" ]; then mkdir -p "$(dirname "$CIFAR")"; tar xzf "$ROOT/../shared/datasets/cifar10-train.tar.gz" -C "$(dirname "$CIFAR")"; fi

echo path,class > "$WORK/labels.csv"
for class in $(ls "$CIFAR"); do
  mkdir -p "$WORK/images/$class" "$WORK/heldout/$class"
  # A whole listing, then slices: `ls | head` under pipefail fails when head stops reading.
  mapfile -t files < <(ls "$CIFAR/$class" | LC_ALL=C sort)
  for f in "${files[@]:0:800}"; do ln -s "$CIFAR/$class/$f" "$WORK/images/$class/$f"; done
  for f in "${files[@]: -200}"; do ln -s "$CIFAR/$class/$f" "$WORK/heldout/$class/$f"; done
  for f in "${files[@]:0:80}"; do echo "$WORK/images/$class/$f,$class" >> "$WORK/labels.csv"; done
done
contrast init "$WORK/p" >/dev/null && contrast import "$WORK/p" "$WORK/images" >/dev/null && contrast label "$WORK/p" --csv "$WORK/labels.csv" >/dev/null

for spec in "$@"; do
  name="${spec%%=*}"; read -r -a args <<< "${spec#*=}"
  started=$(date +%s)
  finished=$(contrast finetune "$WORK/p" --supervised --seed 1 --json "${args[@]}" | tail -1)
  run=$(node -e 'console.log(JSON.parse(process.argv[1]).runId)' "$finished")
  contrast predict "$WORK/p" "$WORK/heldout" --run "$run" --out "$WORK/$name.csv" >/dev/null
  node -e '
    const [csv, name, args, seconds, finished] = process.argv.slice(1);
    const rows = require("fs").readFileSync(csv, "utf8").trim().split("\n").slice(1).map((r) => r.split(","));
    const correct = rows.filter(([file, predicted]) => require("path").basename(require("path").dirname(file)) === predicted).length;
    const s = JSON.parse(finished).summary;
    const line = { arm: name, args, heldOutAccuracy: correct / rows.length, valAccuracy: s.valAccuracy, bestEpoch: s.bestEpoch, trainAccuracy: s.trainAccuracy, batchSize: s.batchSize, wallSeconds: Number(seconds), load: require("os").loadavg()[0] };
    require("fs").appendFileSync(process.env.RESULTS, JSON.stringify(line) + "\n");
    console.log(JSON.stringify(line));
  ' "$WORK/$name.csv" "$name" "${spec#*=}" "$(( $(date +%s) - started ))" "$finished"
done
rm -rf "$WORK"
