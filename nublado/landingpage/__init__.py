"""Init container that installs the landing page in a user's home."""
