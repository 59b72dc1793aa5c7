"""Simulated parts' data: sample camera scenes played by the files camera."""
