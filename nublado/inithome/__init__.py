"""Init container that provisions a user's home directory."""
