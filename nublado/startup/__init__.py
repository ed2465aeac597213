"""Lab startup preparer run inside the lab container before JupyterLab."""
