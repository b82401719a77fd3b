"""Model specs: one package per model (its code, its component extractors, its spec).

Specs are registered through the ``pytest_awml.specs`` entry-point group in pyproject.toml; the
plugin never imports this package by name.
"""
