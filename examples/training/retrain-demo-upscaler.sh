#!/usr/bin/env bash
# Retrain svdlab's demo video upscaler and install it as `--model demo-upscaler` (see the model card in the
# README for the time it takes). Run from anywhere; data and the run go to the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
svdlab synth-data demo-upscaler-data/videos --count 600 --size 128x128 --frames 8 --fps 8 --seed 5000
svdlab prepare-data demo-upscaler-data/videos --out demo-upscaler-data/clips --size 128x128 --frames 8 --fps 8 \
  --calibration fit
svdlab train examples/training/demo-upscaler-base.toml --fresh
svdlab train examples/training/demo-upscaler.toml --fresh
svdlab train examples/training/demo-upscaler-sharp.toml --fresh
svdlab train examples/training/demo-upscaler-steady.toml --fresh
# keep the shipped svdlab.json: it names the upscaler demo-upscaler with its defaults
cp svdlab/models/demo-upscaler/svdlab.json runs/train/demo-upscaler-steady/model/svdlab.json
rm -rf svdlab/models/demo-upscaler
cp -r runs/train/demo-upscaler-steady/model svdlab/models/demo-upscaler
echo "installed runs/train/demo-upscaler-steady/model as --model demo-upscaler (svdlab/models/demo-upscaler)"
