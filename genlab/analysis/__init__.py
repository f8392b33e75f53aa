"""Functions for notebooks and callbacks; they use models only through the public API."""

from genlab.analysis.likelihood import mean_nats_per_dim

__all__ = ["mean_nats_per_dim"]
