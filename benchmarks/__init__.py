"""Benchmarks: speed and paper-claim reproduction, each writing a table under
benchmarks/results/ that the docs quote.  Run ``python -m benchmarks --help``."""
