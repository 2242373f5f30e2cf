"""Benchmarks and the naive recipe they compare against."""
