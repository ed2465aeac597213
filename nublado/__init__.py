"""Kubernetes lab controller for JupyterHub, compatible with Rubin's Nublado."""

__all__ = ["__version__"]

__version__ = "0.1.0"
