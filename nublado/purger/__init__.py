"""Scratch-space purger run on a schedule beside labs."""
