"""benchkit's benchmarks: `python -m benchmarks` (see __main__.py). A regular package, so that another
distribution's top-level `benchmarks` (fairscale installs one) cannot shadow it."""
