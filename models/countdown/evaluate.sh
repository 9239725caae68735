#!/usr/bin/env bash
# The measurements behind the Countdown model card, as braid commands.
# Every run is resumable: each sample is committed to $DB as it finishes,
# and running this script again skips what is done. Runs take hours in all
# on a 2-core machine; run it in the background and read $DB with
# `braid report --db $DB --out report.html`.
#
#   MODEL=models/countdown DB=runs/eval.db models/countdown/evaluate.sh
#
# The JSON summaries and the report go beside $DB (or to $OUT). Runs
# recorded before braid kept a fingerprint of the model in each run
# (2026-11-29) do not match these commands any more, and are refused by
# name: give the script a fresh $DB.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-models/countdown}
DB=${DB:-runs/eval.db}
BRAID=${BRAID:-go run ./cmd/braid}
N=${N:-500}
OUT=${OUT:-$(dirname "$DB")}
mkdir -p "$OUT"
# WEIGHTS: the card's figures were measured in half precision; bfloat16,
# the default on a CPU with AVX-512 BF16, rounds differently (the card's
# "Weights in bfloat16" has what that changes). WEIGHTS= measures the
# default.
WEIGHTS=${WEIGHTS-f16}
common=(--model "$MODEL" --db "$DB" --n "$N" --problem-seed 2 ${WEIGHTS:+--weights "$WEIGHTS"})
# The runs given this are the card's figures at the 2,048 positions the
# model was trained at (measured before the shipped context was raised to
# 4,096); without it a run measures the shipped context.
trained=(--context 2048)

greedy() {
  $BRAID eval "${common[@]}" "${trained[@]}" --run "greedy-$1-2048" --env "$1" --strategies serial,apr,direct --json > "$OUT/greedy-$1-2048.json"
}

# 1. Greedy with the default environment at the shipped context (#5's
#    goals: apr >= 50%, serial >= 35%), then at the trained one.
$BRAID eval "${common[@]}" --run greedy-constrain --strategies serial,apr,direct --json > "$OUT/greedy-constrain.json"
greedy constrain

# 1b. apr stopping a spawn's other children once one reaches the goal, and
#     the vote its other samples at the first verified answer, on the first
#     100 problems (the card's overthinking section).
$BRAID eval "${common[@]}" --n 100 --run join-at-goal --strategies apr --join-at-goal --json > "$OUT/join-at-goal.json"
$BRAID eval "${common[@]}" "${trained[@]}" --n 100 --run vote-join-at-goal --temperature 1 --strategies vote:k=8 --join-at-goal --json > "$OUT/vote-join-at-goal.json"

# 2. Wall time (#6): serial, apr and vote:k=8 one sample at a time, so
#    each sample's latency is its own, not shared with 15 others.
$BRAID eval "${common[@]}" "${trained[@]}" --n 200 --run latency --temperature 1 --concurrent 1 --strategies serial,apr,vote:k=8 --json > "$OUT/latency.json"

# 3. The grid of #7 (serial, apr and self-consistency over 8 serial
#    samples) with #8's robustness and overthinking figures: each cell also
#    runs on the decoy variant of its problem, paired with the clean one.
#    The clean cells are exactly the grid run alone would take.
$BRAID eval "${common[@]}" "${trained[@]}" --run grid --temperature 1 --strategies serial,apr,vote:k=8 --perturb distractors --json > "$OUT/grid.json"

# 4. Greedy with the other environment settings (reported, no goal).
greedy fill
greedy off

# 5. Temperature 1, 8 samples per problem: pass@8 and maj@8 per mode (#5),
#    on the first SAMPLED_N of the problems (8 samples of each mode cost
#    about as much as the rest of this script together).
SAMPLED_N=${SAMPLED_N:-200}
$BRAID eval "${common[@]}" "${trained[@]}" --n "$SAMPLED_N" --run sampled --temperature 1 --seeds 8 --strategies serial,apr,direct --json > "$OUT/sampled.json"

$BRAID report --db "$DB" --out "$OUT/countdown-report.html"
