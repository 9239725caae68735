#!/usr/bin/env bash
# Parallelization-aware RL (#28, goal 2): the model of the P-GRPO run
# (`braid train grpo --config models/countdown/pgrpo.json --from
# models/countdown-sft --out runs/pgrpo`) against the accuracy-only model
# of the same recipe (the shipped models/countdown, grpo.json), on the
# card's 500 test problems, greedy at the shipped context, paired by
# problem (evaluate-greedy.sh): accuracy, and apr's critical path and
# total tokens as ratios with their intervals. Then the wall time of a
# 200-problem apr evaluation of each, alternated REPS times on a quiet
# machine (stop any training first: kill -STOP).
#
#   RUN=runs/pgrpo models/countdown/evaluate-pgrpo.sh
#
# The evaluations resume where they stopped; the timings start afresh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUN=${RUN:-runs/pgrpo}
export DB=${DB:-runs/eval-greedy.db}
export BASE=${BASE:-models/countdown}
export MODEL=${MODEL:-$RUN/model}
export WEIGHTS=${WEIGHTS-f16}
export OUT=${OUT:-$(dirname "$DB")}
REPS=${REPS:-3}
mkdir -p "$OUT"
# One binary, built once, so that no timing includes a build.
if [ -z "${BRAID:-}" ]; then
  go build -o "$OUT/braid" ./cmd/braid
  export BRAID=$OUT/braid
fi
NAME=pgrpo models/countdown/evaluate-greedy.sh
# Wall time: each a fresh database, so nothing resumes.
for i in $(seq "$REPS"); do
  for m in base pgrpo; do
    model=$BASE
    [ "$m" = pgrpo ] && model=$MODEL
    tmp=$(mktemp -d)
    start=$(date +%s%N)
    $BRAID eval --model "$model" --db "$tmp/t.db" --n 200 --problem-seed 2 --strategies apr \
      ${WEIGHTS:+--weights "$WEIGHTS"} --context 4096 --run wall > /dev/null 2>&1
    end=$(date +%s%N)
    rm -rf "$tmp"
    echo "wall $m $i $(( (end - start) / 1000000 )) ms" | tee -a "$OUT/pgrpo-wall.txt"
  done
done
