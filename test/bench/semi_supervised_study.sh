#!/usr/bin/env bash
# Does SimCLR pretraining help with few labels? A small CIFAR-10 study that fits in ~20 minutes on
# 2 cores: pretrain on every image, fine-tune on 10% labels, compare with the same network trained
# from random weights on the same labels (finetune --supervised), both scored on a held-out test set.
#   bash test/bench/semi_supervised_study.sh [per_class_train] [pretrain_epochs]
set -euo pipefail
cd "$(dirname "$0")/../.."
PER_CLASS=${1:-200}
PRETRAIN_EPOCHS=${2:-20}
LABELLED=$((PER_CLASS / 10))
WORK=$(mktemp -d /tmp/contrast-study-XXXX)
CIFAR=/tmp/cifar/train
[ -d "$CIFAR" ] || { mkdir -p /tmp/cifar; tar xzf ../shared/datasets/cifar10-train.tar.gz -C /tmp/cifar; }
contrast() { node bin/contrast.js "$@"; }

for class in $(ls "$CIFAR"); do
  mkdir -p "$WORK/train/$class" "$WORK/test/$class"
  mapfile -t files < <(ls "$CIFAR/$class")
  for f in "${files[@]:0:PER_CLASS}"; do ln -s "$CIFAR/$class/$f" "$WORK/train/$class/$f"; done
  for f in "${files[@]: -100}"; do ln -s "$CIFAR/$class/$f" "$WORK/test/$class/$f"; done
  for f in "${files[@]:0:LABELLED}"; do echo "train/$class/$f,$class"; done >> "$WORK/labels.csv"
done
P="$WORK/project"
contrast init "$P" > /dev/null
contrast import "$P" "$WORK/train" > /dev/null
contrast import "$P" "$WORK/test" --labels-from-folders --split test > /dev/null
contrast label "$P" --csv "$WORK/labels.csv"
contrast status "$P"

common=(--arch resnet18 --width 0.25 --size 32 --seed 1)
time contrast pretrain "$P" "${common[@]}" --epochs "$PRETRAIN_EPOCHS" --json > "$WORK/pretrain.jsonl"
contrast finetune "$P" "${common[@]}" --epochs 30 --json > "$WORK/finetune.jsonl"
contrast finetune "$P" "${common[@]}" --epochs 30 --supervised --json > "$WORK/supervised.jsonl"
contrast runs "$P"
for run in 2 3; do contrast evaluate "$P" --run "$run" --split test --json | tail -n 1 > "$WORK/eval-$run.json"; done
node -e '
const [a, b] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")));
const acc = (e) => (e.summary?.accuracy ?? e.accuracy);
console.log(JSON.stringify({ pretrainedFinetune: acc(a), supervisedOnly: acc(b) }));
' "$WORK/eval-2.json" "$WORK/eval-3.json"
echo "work folder: $WORK"
