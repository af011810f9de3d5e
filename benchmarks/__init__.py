"""Benchmarks of the course's techniques, run with `make bench` (never part of the tests)."""
