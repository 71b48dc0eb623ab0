"""The report: sentences, captions, report.md and the README block, written from results.json alone.

    python -m vae_autograd.report figures/results.json     # rewrites figures/report.md
"""
