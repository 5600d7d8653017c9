"""Tools: one registration gives the model its schema and the worker its implementation."""
