"""Several seeds of one setting, trained in parallel and analysed alike: ``python -m vae_autograd.seeds
--setting literature --seeds 0-4``. An orchestration layer, like run_all.py: settings (what each setting
trains and analyses), analysis (one model's row), worker (one seed in a process of its own), sweep
(the processes, resume, progress), outputs (the JSON, figure and page of every sweep)."""
