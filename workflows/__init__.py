"""Orchestration only: deterministic workflow code (no I/O, no wall clock, no randomness)."""
