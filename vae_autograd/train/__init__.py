"""Training: the options of a run (TrainConfig), its images and validation, the loop, checkpoints, and the command
``python -m vae_autograd.train``."""
