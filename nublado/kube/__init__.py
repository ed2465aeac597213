"""The only code that talks to Kubernetes, and the sandbox API server."""
