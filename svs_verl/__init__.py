"""svs-verl: Self-play with Variational problem Synthesis (SvS) as a plugin for verl 0.9.1."""

__version__ = "0.1.0"

from .core import pass_at_k  # noqa: E402  (the estimator is part of the top-level API)

__all__ = ["pass_at_k", "__version__"]
