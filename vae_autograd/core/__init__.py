"""The primitives every layer builds on: log-space functions, distributions, the networks, the
ELBO, Adam, the per-array gradient and the one check of image batches. No file I/O, no figures."""
