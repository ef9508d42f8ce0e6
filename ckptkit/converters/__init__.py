"""Checkpoint formats, the conversion plan and the model families."""
