"""Decisions as data and pure functions: retries and timeouts, limits, plan validation, pricing.

Deterministic and I/O-free: workflow code calls these directly.
"""
