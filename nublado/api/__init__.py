"""Starlette application: routes, authentication, SSE, errors, forms."""
