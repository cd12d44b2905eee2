"""Benchmarks of nndyn against blog-style baselines measured in the same run.

Run ``python -m benchmarks`` from the repository root (``--toy`` for a seconds-long smoke run);
it prints the tables and writes ``benchmarks/RESULTS.md``. Every figure is the median of the
repeats with its min–max, and every speed-up is a ratio to a baseline timed in the same process.
"""
