#!/usr/bin/env bash
# Reproduce braid's Countdown model from nothing: train the supervised
# model from the recipe, refine it by reinforcement learning (GRPO),
# export that into models/countdown (the directory braid embeds), and take
# the measurements behind its model card. Every stage resumes where it
# stopped, so after an interruption run this again. Supervised training
# takes about six hours of a 2-core CPU, GRPO about two and a half, the
# measurements a few more; run it in the background:
#
#   nohup models/countdown/reproduce.sh > runs/reproduce.log 2>&1 &
#
# RUN (default runs/countdown) holds the supervised run, GRPO_RUN (default
# runs/grpo) the reinforcement-learning run, DB (default runs/eval.db) the
# evaluation samples of the supervised model and runs/eval-rl.db the paired
# comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/countdown}
GRPO_RUN=${GRPO_RUN:-runs/grpo}
mkdir -p runs
# One binary for every stage, built from this checkout.
go build -o runs/braid ./cmd/braid
export BRAID=${BRAID:-runs/braid}

$BRAID train sft --config models/countdown/recipe.json --out "$RUN"
$BRAID train export --run "$RUN" --out models/countdown-sft
# The supervised model at the shipped context: the model of the card's
# Results sections.
$BRAID train export --run "$RUN" --out runs/countdown-sft-4096 --context 4096
MODEL=runs/countdown-sft-4096 models/countdown/evaluate.sh

$BRAID train grpo --config models/countdown/grpo.json --from models/countdown-sft --out "$GRPO_RUN" --eval-every 10 --eval-split test
$BRAID train export --run "$GRPO_RUN" --out models/countdown --context 4096
# braid embeds models/countdown: rebuild it around the new weights.
go build -o runs/braid ./cmd/braid
RUN=$GRPO_RUN models/countdown/evaluate-rl.sh
