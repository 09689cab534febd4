"""On-demand comparisons of holysheep's clients against what users would pick instead.

Run with ``make bench`` (or ``python -m benchmarks --help``). Not part of the test suite:
speed is measured here, against peers in the same run, and reported as ratios.
"""
