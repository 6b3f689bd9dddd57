"""Training: the loop, its checkpoints and what it shows each epoch."""
