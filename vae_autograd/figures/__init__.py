"""Figures of the study, one module per family. Each function takes arrays (and summaries) and
returns a ``matplotlib.figure.Figure``; pyplot is never used. The only layer that imports matplotlib."""
