"""Benchmarks (issue 6): ``python -m bench``; not part of the test suite."""
