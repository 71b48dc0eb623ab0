"""Training: the options of a run (TrainConfig), the loop, checkpoints, and the command
``python -m vae_autograd.train``."""
