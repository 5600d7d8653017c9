"""Observability: traces, structured logs, metrics, redaction and payload encryption.

One layer beside `activities/`: the worker and the starter set it up (`observability.setup`),
activities record model and tool telemetry through it, and the workflow records state spans and
run metrics through `workflows/telemetry.py`, which uses only its replay-safe parts.
"""
