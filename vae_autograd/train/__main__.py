"""``python -m vae_autograd.train``: train the VAE (see train.command)."""
from .command import main

if __name__ == "__main__":
    main()
