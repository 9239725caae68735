#!/usr/bin/env bash
# Reproduce braid's Countdown model from nothing: train it from the recipe,
# export it into models/countdown (the directory braid embeds), and take
# the measurements behind its model card. Every stage resumes where it
# stopped, so after an interruption run this again. Training takes about
# six hours of a 2-core CPU, the measurements a few more; run it in the
# background:
#
#   nohup models/countdown/reproduce.sh > runs/reproduce.log 2>&1 &
#
# RUN (default runs/countdown) holds the training run, DB (default
# runs/eval.db) the evaluation samples.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/countdown}
mkdir -p runs
# One binary for every stage, built from this checkout.
go build -o runs/braid ./cmd/braid
export BRAID=${BRAID:-runs/braid}

$BRAID train sft --config models/countdown/recipe.json --out "$RUN"
# The model as trained (2,048 positions), the start of reinforcement
# learning; and the one braid embeds, the same weights run at 4,096
# positions (rotary embeddings extrapolate: the card has both contexts'
# figures).
$BRAID train export --run "$RUN" --out models/countdown-sft
$BRAID train export --run "$RUN" --out models/countdown --context 4096
# Rebuilt with the weights just exported embedded in it.
go build -o runs/braid ./cmd/braid
MODEL=models/countdown models/countdown/evaluate.sh
