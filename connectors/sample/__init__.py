"""A deterministic, realistic e-commerce sample dataset in Segment spec (`espbridge sample`)."""

from connectors.sample.generate import generate

__all__ = ["generate"]
