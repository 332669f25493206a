#!/usr/bin/env bash
# Retrain svdlab's context demo model from the demo model and install it as `--model demo-context` (see the
# model card in the README for the time it takes). Run from anywhere; data and the run go to the
# repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
svdlab synth-data demo-context-data/videos --count 800 --size 64x64 --frames 18 --fps 8 --seed 1000
svdlab prepare-data demo-context-data/videos --out demo-context-data/clips --size 64x64 --frames 9 --fps 8,4 \
  --calibration fit
svdlab train examples/training/demo-context.toml --fresh
# keep the shipped svdlab.json: it names the model demo-context with its defaults
cp svdlab/models/demo-context/svdlab.json runs/train/demo-context/model/svdlab.json
rm -rf svdlab/models/demo-context
cp -r runs/train/demo-context/model svdlab/models/demo-context
echo "installed runs/train/demo-context/model as --model demo-context (svdlab/models/demo-context)"
