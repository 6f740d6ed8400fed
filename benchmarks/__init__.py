"""Performance suite: each script compares our code with the tools people would otherwise use.

Run one with ``python -m benchmarks.<name> [--json] [--write]``; results go to
``benchmarks/results/<name>.json``.
"""
