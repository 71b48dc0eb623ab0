"""The study, one module per part (3 marginal likelihood, 4-5 decodings and latent classes, 6.1-6.2
posteriors, 6.3 SVI, 7 estimators, 8 inference gaps) and the quadrature and Gaussian-fit machinery
they share. Every function returns arrays and JSON-ready summaries; none draws or writes prose."""
