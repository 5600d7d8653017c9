"""Benchmarks: every performance figure comes from a script here that anyone can rerun."""
