#!/usr/bin/env bash
# Retrain svdlab's demo model from scratch and install it as `--model demo` (see the model card in the
# README for the time it takes). Run from anywhere; data and the runs go to the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
# run 1: the first demo, from scratch on sprites moving every way (demo-data/)
svdlab synth-data demo-data/videos --count 800 --size 64x64 --frames 16 --fps 8 --seed 1000
svdlab prepare-data demo-data/videos --out demo-data/clips --size 64x64 --frames 8 --fps 8,4 --calibration fit
svdlab train examples/training/demo.toml --fresh
# runs 2 to 4: its world taught to move as a whole (demo-pan-data/: svdlab.training.synthetic.DEMO_SCENES)
svdlab synth-data demo-pan-data/videos --count 800 --size 64x64 --frames 16 --fps 8 --seed 1000 \
  --max-sprites 1 --max-speed 0 --min-pan 0.005 --max-pan 0.03 --pan-probability 1 --still-probability 0 \
  --directions 0:0 --sizes 0.16:0.22 --backgrounds noise,stripes,gradient
svdlab prepare-data demo-pan-data/videos --out demo-pan-data/clips --size 64x64 --frames 8 --fps 8 \
  --calibration fit
svdlab train examples/training/demo-pan-high.toml --fresh
svdlab train examples/training/demo-pan.toml --fresh
svdlab train examples/training/demo-pan-decoder.toml --fresh
# keep the shipped svdlab.json: it names the model demo with its defaults (the run's names it "model")
cp svdlab/models/demo/svdlab.json runs/train/demo-pan-decoder/model/svdlab.json
rm -rf svdlab/models/demo
cp -r runs/train/demo-pan-decoder/model svdlab/models/demo
echo "installed runs/train/demo-pan-decoder/model as --model demo (svdlab/models/demo)"
