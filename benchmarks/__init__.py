"""Benchmarks: a realistic corpus generator and the measurements behind BENCHMARKS.md."""
