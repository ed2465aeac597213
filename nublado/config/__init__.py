"""Pydantic models of every configuration file, loading and schema export."""
