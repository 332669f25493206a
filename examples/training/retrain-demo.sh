#!/usr/bin/env bash
# Retrain svdlab's demo model from scratch and install it as `--model demo` (see the model card in the
# README for the time it takes). Run from anywhere; data and the run go to the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
svdlab synth-data demo-data/videos --count 800 --size 64x64 --frames 16 --fps 8 --seed 1000
svdlab prepare-data demo-data/videos --out demo-data/clips --size 64x64 --frames 8 --fps 8,4 --calibration fit
svdlab train examples/training/demo.toml --fresh
# keep the shipped svdlab.json: it names the model demo with its defaults (the run's names it "model")
cp svdlab/models/demo/svdlab.json runs/train/demo/model/svdlab.json
rm -rf svdlab/models/demo
cp -r runs/train/demo/model svdlab/models/demo
echo "installed runs/train/demo/model as --model demo (svdlab/models/demo)"
