"""Interfaces the daemon's logic depends on; no vendor imports here."""
