#!/usr/bin/env bash
# The reinforcement-learning measurements (#10) for the model card: the
# model of a GRPO run (`braid train grpo --config
# models/countdown/grpo.json --from models/countdown-sft --out runs/grpo`)
# against the supervised one, on the same 500 test problems as evaluate.sh,
# paired by problem:
#
# - greedy at the shipped context (4,096), against evaluate.sh's
#   greedy-constrain;
# - temperature 1 at the trained context (2,048), against its grid (the
#   same seeds, so both draw from the same random numbers).
#
#   RUN=runs/grpo DB=runs/eval.db models/countdown/evaluate-rl.sh
#
# Every run resumes where it stopped; run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/grpo}
DB=${DB:-runs/eval.db}
BRAID=${BRAID:-go run ./cmd/braid}
RL=${RL:-$RUN/model}
OUT=${OUT:-$(dirname "$DB")}
mkdir -p "$OUT"
common=(--model "$RL" --db "$DB" --n 500 --problem-seed 2 --strategies serial,apr)

$BRAID train export --run "$RUN" --out "$RL" --context 4096
$BRAID eval "${common[@]}" --run rl-greedy --json > "$OUT/rl-greedy.json"
$BRAID eval "${common[@]}" --context 2048 --run rl-grid --temperature 1 --json > "$OUT/rl-grid.json"
for s in serial apr; do
  $BRAID compare --db "$DB" "rl-greedy/$s" "greedy-constrain/$s"
  $BRAID compare --db "$DB" "rl-grid/$s" "grid/$s"
done
