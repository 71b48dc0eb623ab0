"""``python -m vae_autograd.train``: train the VAE (see train.command)."""
from ..io.process import exit_on_interrupt_while_starting, ignore_interrupts

exit_on_interrupt_while_starting()  # before the imports below, which take a second

from .command import main

if __name__ == "__main__":
    try:
        main()
    finally:
        ignore_interrupts()
