"""LSD: Live-Stream Diffusion."""

__version__ = "0.1.0"
