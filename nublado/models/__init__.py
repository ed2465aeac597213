"""API models and domain models shared by the layers."""
