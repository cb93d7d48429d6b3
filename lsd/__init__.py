"""LSD: Live-Stream Diffusion."""

__version__ = "0.1.0"


def load(path, device="cpu", dtype=None):
    """Rebuild an `LSDModel` from a checkpoint directory, cast to `dtype` (None: as stored;
    imported lazily: `import lsd` stays light for the tools that need no torch)."""
    from .models import load as load_model

    return load_model(path, device, dtype)


def __getattr__(name):
    if name == "Stream":  # lazily, like load: torch is imported only when asked for
        from .stream import Stream

        return Stream
    raise AttributeError(f"module 'lsd' has no attribute {name!r}")
