"""Pydantic models that cross every boundary: client ↔ workflow ↔ activities.

Pure data, no I/O: the workflow sandbox imports these freely. Adding a field must keep a
default so old callers and recorded histories still decode.
"""
