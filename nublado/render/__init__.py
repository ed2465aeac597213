"""Jinja environment, quoting filter and the context builders of every object set."""
