"""Benchmarks that need no test framework: python -m magc_plugin.benchmarks.<name>."""
