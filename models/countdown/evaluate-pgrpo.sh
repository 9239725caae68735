#!/usr/bin/env bash
# Parallelization-aware RL (#28, goal 2): the model of the P-GRPO run
# (`braid train grpo --config models/countdown/pgrpo.json --from
# models/countdown-sft --out runs/pgrpo`) against the accuracy-only model
# of the same recipe (the shipped models/countdown, grpo.json), on the
# card's 500 test problems, greedy at the shipped context, paired by
# problem: accuracy, and apr's critical path and total tokens as ratios
# with their intervals. Then the wall time of a 200-problem apr evaluation
# of each, alternated REPS times on a quiet machine (stop any training
# first: kill -STOP).
#
#   RUN=runs/pgrpo DB=runs/eval-pgrpo.db models/countdown/evaluate-pgrpo.sh
#
# The evaluations resume where they stopped; the timings start afresh.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/pgrpo}
DB=${DB:-runs/eval-pgrpo.db}
BASE=${BASE:-models/countdown}
PG=${PG:-$RUN/model}
N=${N:-500}
REPS=${REPS:-3}
# The card's figures are in half precision (evaluate.sh says why).
WEIGHTS=${WEIGHTS-f16}
OUT=${OUT:-$(dirname "$DB")}
mkdir -p "$OUT"
# One binary, built once, so that no timing includes a build.
if [ -z "${BRAID:-}" ]; then
  go build -o "$OUT/braid" ./cmd/braid
  BRAID=$OUT/braid
fi

$BRAID train export --run "$RUN" --out "$PG" --context 4096
for m in base pgrpo; do
  model=$BASE
  [ "$m" = pgrpo ] && model=$PG
  $BRAID eval --model "$model" --db "$DB" --n "$N" --problem-seed 2 --strategies serial,apr \
    ${WEIGHTS:+--weights "$WEIGHTS"} --context 4096 --run "$m-greedy" --json > "$OUT/$m-greedy.json"
done
for s in apr serial; do
  $BRAID compare --db "$DB" "pgrpo-greedy/$s" "base-greedy/$s"
done
# Wall time: each a fresh database, so nothing resumes.
for i in $(seq "$REPS"); do
  for m in base pgrpo; do
    model=$BASE
    [ "$m" = pgrpo ] && model=$PG
    tmp=$(mktemp -d)
    start=$(date +%s%N)
    $BRAID eval --model "$model" --db "$tmp/t.db" --n 200 --problem-seed 2 --strategies apr \
      ${WEIGHTS:+--weights "$WEIGHTS"} --context 4096 --run wall > /dev/null 2>&1
    end=$(date +%s%N)
    rm -rf "$tmp"
    echo "wall $m $i $(( (end - start) / 1000000 )) ms" | tee -a "$OUT/pgrpo-wall.txt"
  done
done
