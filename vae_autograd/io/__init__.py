"""Input and output: the MNIST files (find, verify, download, parse), files and folders written
atomically, and the process settings of the command-line entry points."""
