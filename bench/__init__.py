"""Benchmarks of issue 7, not tests: see bench/README.md."""
