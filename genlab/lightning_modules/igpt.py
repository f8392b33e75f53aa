"""iGPT (Chen et al., 2020, "Generative Pretraining from Pixels"): a GPT over the pixels
of an image in raster order.

Each pixel is one token: its level for one-channel images, and the whole colour
``r * K^2 + g * K + b`` for RGB images with K levels per channel (64 tokens for 2-bit
colour), so one softmax models the three channels jointly. Likelihoods are still
reported per subpixel (``nats_per_dim``), and per pixel under ``*/nats_per_token``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genlab.lightning_modules.base import (
    LikelihoodModel,
    check_discrete_data,
    warmup_cosine_schedule,
)
from genlab.nn.distributions import categorical_log_prob
from genlab.nn.modes import evaluating
from genlab.nn.transformer import GPT, GPTConfig


class IGPT(LikelihoodModel):
    """A GPT over images ``[B, C, H, W]`` with ``num_levels`` values per subpixel.

    Args:
        image_shape: (channels, height, width); linked from the data module.
        num_levels: values per subpixel K; linked from the data module.
        width: embedding width (course: 128).
        num_heads: attention heads (course: 4).
        num_layers: transformer blocks (course: 2).
        dropout: dropout on embeddings, attention and MLP outputs.
        learning_rate: peak Adam step size.
        warmup_steps: linear warm-up steps before the cosine decay (course: 1,000).
    """

    name = "igpt"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 20, 20),
        num_levels: int = 2,
        width: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        warmup_steps: int = 1000,
    ) -> None:
        super().__init__(learning_rate)
        self.save_hyperparameters()
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        channels, height, width_pixels = self.image_shape
        if channels not in (1, 3):
            raise ValueError(f"iGPT takes 1 or 3 channels, got image_shape {self.image_shape}")
        self.num_tokens = height * width_pixels
        config = GPTConfig(
            vocab_size=num_levels**channels,
            context_length=self.num_tokens + 1,
            width=width,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.gpt = GPT(config)
        self.register_buffer(
            "place_values", num_levels ** torch.arange(channels - 1, -1, -1), persistent=False
        )
        self.dims_per_token = channels

    def to_tokens(self, x: Tensor) -> Tensor:
        """``[B, H*W]`` tokens of images ``[B, C, H, W]``, raster order."""
        return (x * self.place_values[None, :, None, None]).sum(dim=1).flatten(1)

    def to_images(self, tokens: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` of tokens ``[B, H*W]``."""
        _, height, width = self.image_shape
        digits = tokens[:, None, :] // self.place_values[None, :, None] % self.num_levels
        return digits.view(len(tokens), -1, height, width)

    def forward(self, x: Tensor) -> Tensor:
        """Next-token logits ``[B, H*W, K^C]``: row ``t`` is the distribution of pixel
        ``t`` (raster order, all channels jointly) given the pixels before it. The
        natural shape of a model with one token per pixel."""
        check_discrete_data(x, self.image_shape, self.num_levels, "images")
        return self.gpt(self.gpt.with_bos(self.to_tokens(x))[:, :-1])

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact log-likelihood of each image, in nats."""
        return categorical_log_prob(self(x), self.to_tokens(x), dim=2)

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        on_step: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Exact ancestral samples, one pixel per step. ``use_cache`` keeps every layer's
        keys and values; with or without it the same generator gives the same images.
        ``on_step(i)`` is called after pixel ``i`` (for timing)."""
        with evaluating(self):
            tokens = self.gpt.generate_from_bos(
                num_samples,
                self.num_tokens,
                use_cache=use_cache,
                generator=generator,
                on_step=on_step,
            )
        return self.to_images(tokens)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.learning_rate)
        return warmup_cosine_schedule(self, optimizer, self.hparams.warmup_steps)
