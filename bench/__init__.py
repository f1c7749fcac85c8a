"""Benchmarks: `make bench` (python -m bench). Figures, never pass/fail; see RESULTS.md."""
