#!/usr/bin/env bash
# The reinforcement-learning measurements (#10) for the model card: the
# model of a GRPO run (`braid train grpo --config
# models/countdown/grpo.json --from models/countdown-sft --out runs/grpo`)
# against the supervised one it began from, on the same 500 test problems
# as evaluate.sh, in serial and apr, paired by problem:
#
# - greedy at the shipped context (4,096), how braid solves by default;
# - temperature 1 at the trained context (2,048); both models' runs draw
#   from the same random numbers.
#
#   RUN=runs/grpo DB=runs/eval-rl.db models/countdown/evaluate-rl.sh
#
# Every run resumes where it stopped; run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/grpo}
DB=${DB:-runs/eval-rl.db}
BRAID=${BRAID:-go run ./cmd/braid}
SFT=${SFT:-models/countdown-sft}
RL=${RL:-$RUN/model}
N=${N:-500}
# The card's figures are in half precision (evaluate.sh says why);
# WEIGHTS= measures the default, bfloat16 where the CPU has it.
WEIGHTS=${WEIGHTS-f16}
OUT=${OUT:-$(dirname "$DB")}
mkdir -p "$OUT"

$BRAID train export --run "$RUN" --out "$RL" --context 4096
# Greedy first, both models: it decides which model ships.
for kind in greedy t1; do
  for m in sft rl; do
    model=$SFT
    [ "$m" = rl ] && model=$RL
    flags=(--context 4096)
    [ "$kind" = t1 ] && flags=(--context 2048 --temperature 1)
    $BRAID eval --model "$model" --db "$DB" --n "$N" --problem-seed 2 --strategies serial,apr \
      ${WEIGHTS:+--weights "$WEIGHTS"} "${flags[@]}" --run "$m-$kind" --json > "$OUT/$m-$kind.json"
  done
done
for s in serial apr; do
  $BRAID compare --db "$DB" "rl-greedy/$s" "sft-greedy/$s"
  $BRAID compare --db "$DB" "rl-t1/$s" "sft-t1/$s"
done
