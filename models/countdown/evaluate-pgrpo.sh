#!/usr/bin/env bash
# Parallelization-aware RL (#28, goal 2): the model of a P-GRPO run
# (`braid train grpo --config models/countdown/pgrpo.json --from
# models/countdown-sft --out runs/pgrpo`, or pgrpo-latency.json's run,
# measured as NAME) against the accuracy-only model
# of the same recipe (the shipped models/countdown, grpo.json), on the
# card's 500 test problems, greedy at the shipped context, paired by
# problem (evaluate-greedy.sh): accuracy, and apr's critical path and
# total tokens as ratios with their intervals. Then the wall time of a
# 200-problem apr evaluation of each, REPS times, the models' order
# alternating, on a quiet machine (stop any training first: kill -STOP):
#
# - latency: --concurrent 1, each problem alone, as a user waiting for
#   one answer sees it; the samples' wall times are kept
#   ($OUT/$NAME-latency.db) for a paired ratio by problem;
# - throughput: --concurrent 16 (braid eval's default), the machine full.
#
#   RUN=runs/pgrpo models/countdown/evaluate-pgrpo.sh
#   RUN=runs/pgrpo-latency NAME=latency models/countdown/evaluate-pgrpo.sh
#   JOIN_AT_GOAL=1 RUN=runs/pgrpo-latency-jag NAME=latency-jag models/countdown/evaluate-pgrpo.sh
#
# JOIN_AT_GOAL=1 runs every apr evaluation, both models', with
# --join-at-goal.
#
# The evaluations resume where they stopped; the timings start afresh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUN=${RUN:-runs/pgrpo}
export NAME=${NAME:-pgrpo}
export DB=${DB:-runs/eval-greedy.db}
export BASE=${BASE:-models/countdown}
export MODEL=${MODEL:-$RUN/model}
export WEIGHTS=${WEIGHTS-f16}
export OUT=${OUT:-$(dirname "$DB")}
REPS=${REPS:-2}
mkdir -p "$OUT"
# One binary, built once, so that no timing includes a build.
if [ -z "${BRAID:-}" ]; then
  go build -o "$OUT/braid" ./cmd/braid
  export BRAID=$OUT/braid
fi
models/countdown/evaluate-greedy.sh
# Wall time. The timings start afresh: a resumed run would time nothing.
LAT=$OUT/$NAME-latency.db
rm -f "$LAT" "$LAT-wal" "$LAT-shm"
for i in $(seq "$REPS"); do
  order="base $NAME"
  [ $((i % 2)) = 0 ] && order="$NAME base"
  for m in $order; do
    model=$BASE
    [ "$m" = "$NAME" ] && model=$MODEL
    for conc in 1 16; do
      db=$LAT run=latency-$m-$i
      if [ "$conc" = 16 ]; then
        tmp=$(mktemp -d)
        db=$tmp/t.db run=wall
      fi
      start=$(date +%s%N)
      $BRAID eval --model "$model" --db "$db" --n 200 --problem-seed 2 --strategies apr --concurrent "$conc" \
        ${WEIGHTS:+--weights "$WEIGHTS"} --context 4096 ${JOIN_AT_GOAL:+--join-at-goal} --run "$run" > /dev/null 2>&1
      end=$(date +%s%N)
      [ "$conc" = 16 ] && rm -rf "$tmp"
      echo "wall $m rep $i concurrent $conc: $(( (end - start) / 1000000 )) ms" | tee -a "$OUT/$NAME-wall.txt"
    done
  done
done
for i in $(seq "$REPS"); do
  $BRAID compare --db "$LAT" "latency-$NAME-$i/apr" "latency-base-$i/apr"
done
