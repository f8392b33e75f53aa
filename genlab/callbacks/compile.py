"""Opt-in ``torch.compile`` of a model's networks (``genlab fit ... --compile true``), with
a fall back to eager mode, and one warning saying why, where compilation is unavailable."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from genlab.errors import first_line


def networks_of(model: nn.Module) -> dict[str, nn.Module]:
    """What to compile: each direct child with trainable parameters (metrics and frozen
    parts, such as a token prior's VQ-VAE, stay eager), or the model itself when all its
    trainable parameters are its own (a histogram)."""
    networks = {
        name: child
        for name, child in model.named_children()
        if any(parameter.requires_grad for parameter in child.parameters())
    }
    return networks or {type(model).__name__: model}


class CompileNetworks(L.Callback):
    """Compiles the model's networks (see ``networks_of``) with ``torch.compile`` when a
    fit, validation, test or prediction sets up.

    Each network's ``forward`` is replaced by its compiled version: parameter names, and
    with them checkpoints, stay those of the eager model, so a checkpoint of a compiled
    run loads into an uncompiled model. Sampling and scoring go through the compiled
    networks too (new shapes compile again on their first use). Where compilation is
    unavailable (an unsupported platform or Python, no C compiler, or a failure at a
    network's first call), every network goes back to eager mode with one warning that
    says why, and the run goes on. Compiled graphs keep their saved tensors for repeated
    backward passes (``torch._functorch.config.donated_buffer`` is switched off for the
    process), which the diffusion model's exact divergence needs.

    Args:
        mode: ``torch.compile``'s mode: None, "reduce-overhead", "max-autotune", ...
        backend: ``torch.compile``'s backend ("inductor" generates kernels).
    """

    def __init__(self, mode: str | None = None, backend: str = "inductor") -> None:
        super().__init__()
        self.mode = mode
        self.backend = backend
        self.compiled: dict[str, nn.Module] = {}
        self.failure: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.compiled or self.failure:
            return
        # donated buffers free a compiled graph's saved tensors at its first backward pass;
        # the diffusion model's exact divergence takes one backward pass per coordinate
        torch._functorch.config.donated_buffer = False
        for name, network in networks_of(pl_module).items():
            eager = network.forward
            try:
                compiled = torch.compile(eager, mode=self.mode, backend=self.backend)
            except Exception as error:  # raised at once on platforms dynamo does not support
                self.fall_back(error)
                return
            network.forward = self.first_call_guard(network, eager, compiled)
            self.compiled[name] = network

    def first_call_guard(self, network: nn.Module, eager: Callable, compiled: Callable) -> Callable:
        """``compiled`` for the network's first call, run eagerly again if it fails: when
        the eager call succeeds the compiler was at fault and every network falls back,
        else the error is the network's own and is raised as eager mode raises it.
        After a first success, the network calls ``compiled`` directly."""

        def forward(*args, **kwargs):
            try:
                result = compiled(*args, **kwargs)
            except Exception as error:
                result = eager(*args, **kwargs)
                self.fall_back(error)
                return result
            network.forward = compiled
            return result

        return forward

    def fall_back(self, error: Exception) -> None:
        """Every network back to its eager ``forward``, with one warning naming the error."""
        for network in self.compiled.values():
            vars(network).pop("forward", None)
        self.compiled = {}
        name, line = type(error).__name__, first_line(error)
        self.failure = name if line == name else f"{name}: {line}"
        rank_zero_warn(
            f"torch.compile is unavailable here ({self.failure}); the model runs in eager mode"
        )
