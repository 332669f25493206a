"""Training: datasets from video folders and synthetic motion, motion labels, the EDM objective, the loop,
LoRA."""
