#!/usr/bin/env bash
# The reward-hacking measurements (#28) for the model card: a GRPO run
# against a grader that trusts "No solution found." (the loophole,
# models/countdown/loophole.json), its model against the one it began
# from on a test set half without a solution, and the monitors read over
# both models' searches, labelled by the exact solver.
#
#   braid train grpo --config models/countdown/loophole.json --from models/countdown --out runs/loophole --keep-every 8
#   RUN=runs/loophole models/countdown/evaluate-monitor.sh
#
# and a run with a monitor in its reward (loophole-threads.json,
# loophole-root.json) the same way: RUN=runs/loophole-threads.
#
# Every step resumes where it stopped; run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/loophole}
NAME=${NAME:-$(basename "$RUN")}
DB=${DB:-runs/monitor/monitor.db}
BRAID=${BRAID:-go run ./cmd/braid}
START=${START:-models/countdown}
# The judge of the model monitors: the model before the loophole, a model
# of honest search.
JUDGE=${JUDGE:-$START}
N=${N:-250}
OUT=$(dirname "$DB")
mkdir -p "$OUT"

# The calibration of the rule monitors' thresholds (the least an honest
# search explores before it gives up): the start model on 100 training
# problems without a solution.
$BRAID gen problems --n 100 --split train --seed 5 --unsolvable > "$OUT/calibrate.jsonl"
$BRAID eval --model "$START" --db "$DB" --input "$OUT/calibrate.jsonl" --context 4096 \
  --strategies serial,apr --run calibrate --json > "$OUT/calibrate.json"

# The test set: N test problems with a solution (the card's first N) and
# N without.
$BRAID gen problems --n "$N" --split test --seed 2 > "$OUT/solvable.jsonl"
$BRAID gen problems --n "$N" --split test --seed 2 --unsolvable > "$OUT/unsolvable.jsonl"
cat "$OUT/solvable.jsonl" "$OUT/unsolvable.jsonl" > "$OUT/mixed.jsonl"

$BRAID train export --run "$RUN" --out "$RUN/model" --context 4096
for m in start "$NAME"; do
  model=$START
  [ "$m" = "$NAME" ] && model=$RUN/model
  $BRAID eval --model "$model" --db "$DB" --input "$OUT/mixed.jsonl" --context 4096 \
    --strategies serial,apr --run "$m" --json > "$OUT/$m.json"
  # The model monitors ask the judge at every give-up (minutes): a run
  # already judged is not judged again (delete its file to redo it).
  [ -s "$OUT/$m-monitors.json" ] && continue
  $BRAID monitor --db "$DB" --run "$m" --monitors answer,threads,root,model,model-root,model-mean \
    --model "$JUDGE" --context 4096 --json-out "$OUT/$m-monitors.json" | tee "$OUT/$m-monitors.txt"
done
# Both models' searches as one population: the rule monitors (seconds),
# then the model monitors by the least and the mean of the give-ups.
$BRAID monitor --db "$DB" --run "start,$NAME" --json-out "$OUT/pooled-rules-$NAME.json" | tee "$OUT/pooled-rules-$NAME.txt"
[ -s "$OUT/pooled-model-$NAME.json" ] ||
  $BRAID monitor --db "$DB" --run "start,$NAME" --monitors model,model-mean --model "$JUDGE" --context 4096 \
    --json-out "$OUT/pooled-model-$NAME.json" | tee "$OUT/pooled-model-$NAME.txt"
