"""Benchmarks of kiosk-edge: named figures, each the median of several runs, with the machine."""
