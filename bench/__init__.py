"""Benchmarks that print figures (run as scripts or with `python -m bench.<name>`)."""
