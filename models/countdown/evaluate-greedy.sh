#!/usr/bin/env bash
# A training run's model against a base model (the shipped one by
# default), greedy at the shipped context on the card's 500 test problems,
# paired by problem, serial and apr: accuracy, and the critical path and
# total tokens as ratios with their intervals. The base's evaluation is
# shared by every run measured in the same database.
#
#   RUN=runs/grpo-hard NAME=hard models/countdown/evaluate-greedy.sh
#
# exports the run into $RUN/model and evaluates it as run "$NAME-greedy"
# beside "base-greedy" in $DB. Each evaluation resumes where it stopped.
# STEP=N exports the model the run kept at step N (--keep-every) instead
# of its latest checkpoint: one chosen on validation problems, never on
# these. JOIN_AT_GOAL=1 evaluates apr with --join-at-goal (both models,
# as runs "$NAME-greedy-jag" and "base-greedy-jag").
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:?RUN=runs/NAME: the training run to measure}
NAME=${NAME:?NAME: what to call its evaluation in the database}
DB=${DB:-runs/eval-greedy.db}
BASE=${BASE:-models/countdown}
MODEL=${MODEL:-$RUN/model}
N=${N:-500}
# The card's figures are in half precision (evaluate.sh says why).
WEIGHTS=${WEIGHTS-f16}
OUT=${OUT:-$(dirname "$DB")}
mkdir -p "$OUT"
if [ -z "${BRAID:-}" ]; then
  go build -o "$OUT/braid" ./cmd/braid
  BRAID=$OUT/braid
fi

$BRAID train export --run "$RUN" --step "${STEP:-0}" --out "$MODEL" --context 4096
SUFFIX=greedy
[ -n "${JOIN_AT_GOAL:-}" ] && SUFFIX=greedy-jag
for m in base "$NAME"; do
  model=$BASE
  [ "$m" = "$NAME" ] && model=$MODEL
  $BRAID eval --model "$model" --db "$DB" --n "$N" --problem-seed 2 --strategies serial,apr \
    ${WEIGHTS:+--weights "$WEIGHTS"} --context 4096 ${JOIN_AT_GOAL:+--join-at-goal} \
    --run "$m-$SUFFIX" --json > "$OUT/$m-$SUFFIX.json"
done
for s in apr serial; do
  $BRAID compare --db "$DB" "$NAME-$SUFFIX/$s" "base-$SUFFIX/$s"
done
