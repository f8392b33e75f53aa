"""The numeric arguments every model shares by name, checked in one place.

Every model calls ``save_hyperparameters()`` in its constructor (DESIGN.md); the
``CheckedArguments`` mixin checks the saved arguments there against the ranges below,
so a negative ``num_layers`` or a zero ``learning_rate`` stops the constructor with one
line naming the argument and its value instead of building a broken network or failing
later with a message about tensors. Arguments with a rule of their own (a choice of
names, a relation between arguments) are checked by their model.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

# Smallest value of counts and sizes; a sequence argument applies it to every entry.
AT_LEAST = {
    "num_levels": 2,
    "num_bins": 1,
    "num_components": 1,
    "hidden_channels": 1,
    "hidden_units": 1,
    "made_hidden_units": 1,
    "num_layers": 1,
    "num_hidden_layers": 0,
    "kernel_size": 1,
    "dilations": 1,
    "width": 1,
    "num_heads": 1,
    "context_length": 2,
    "warmup_steps": 0,
    "latent_dim": 1,
    "discriminator_hidden_units": 1,
    "discriminator_layers": 1,
    "num_codes": 1,
    "code_dim": 1,
    "num_residual_blocks": 0,
    "dim": 1,
    "time_features": 1,
    "sample_steps": 1,
    "likelihood_steps": 1,
    "elbo_steps": 1,
    "ordering_seed": 0,
    "min_learning_rate": 0,
    "weight_decay": 0,
    "beta": 0,
}
POSITIVE = ("learning_rate", "discriminator_learning_rate")  # finite and > 0
PROBABILITIES = ("dropout", "label_dropout", "noise_level", "decay")  # in [0, 1]


def check_arguments(arguments: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first argument outside its range. Arguments not
    named above, and None (a value filled in later), pass."""
    for name, value in arguments.items():
        if value is None:
            continue
        if name in AT_LEAST:
            check_at_least(name, value, AT_LEAST[name])
        elif name in POSITIVE and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
        elif name in PROBABILITIES and not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


def check_at_least(name: str, value: float | Sequence[float], minimum: float) -> None:
    """``value``, or every entry of a sequence ``value``, is ``minimum`` or more."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if any(entry < minimum for entry in value):
            raise ValueError(f"every entry of {name} must be at least {minimum}, got {value}")
    elif value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


class CheckedArguments:
    """Mixin for a LightningModule: ``save_hyperparameters`` also checks the arguments
    (see the module docstring)."""

    def save_hyperparameters(self, *args: Any, frame: Any = None, **kwargs: Any) -> None:
        caller = frame or inspect.currentframe().f_back  # Lightning reads the caller's arguments
        super().save_hyperparameters(*args, frame=caller, **kwargs)
        check_arguments(self.hparams)
