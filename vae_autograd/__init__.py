"""vae-autograd: a from-scratch VAE on binarized MNIST (Kingma & Welling 2013, App. C)."""
