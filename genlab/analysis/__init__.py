"""Functions for notebooks and callbacks; they use models only through the public API."""

from genlab.analysis.likelihood import mean_nats_per_dim
from genlab.analysis.receptive_field import input_gradient, receptive_field

__all__ = ["input_gradient", "mean_nats_per_dim", "receptive_field"]
