"""Gated PixelCNN (van den Oord et al., 2016, "Conditional Image Generation with PixelCNN
Decoders"): a PixelCNN without a blind spot, built from a vertical and a horizontal
stack of masked convolutions with gated activations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.lightning_modules.base import ImageAutoregressiveModel
from genlab.nn.cached_gated_pixelcnn import sample_cached_gated
from genlab.nn.gated_pixelcnn import GatedPixelCNNNet, StackConv2d, Variant
from genlab.nn.modes import evaluating
from genlab.nn.sampling import sample_raster


class GatedPixelCNN(ImageAutoregressiveModel):
    """Gated PixelCNN over images ``[B, C, H, W]`` with ``num_levels`` values per
    subpixel (256 for 8-bit MNIST); colour channels are independent given earlier pixels.

    Args:
        image_shape: (channels, height, width); linked from the data module.
        num_levels: values per subpixel K; linked from the data module.
        variant: "gated" (gates, vertical-to-horizontal links, residual horizontal
            stack, dilations) or "plain" (ReLU masked convolutions, stacks summed at the
            end).
        hidden_channels: feature maps per stack.
        num_layers: layers of each stack.
        kernel_size: odd kernel size of every stack convolution.
        dilations: dilations cycled over the middle layers (first and last use 1);
            ignored by the plain variant.
        causal: False opens the centre of the first horizontal kernel, so each
            prediction reads its own pixel: an ablation that shows what masking buys.
        learning_rate: Adam's step size.
    """

    cached_sampler = staticmethod(sample_cached_gated)

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_levels: int = 256,
        variant: Variant = "gated",
        hidden_channels: int = 64,
        num_layers: int = 8,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 1, 4),
        causal: bool = True,
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__(learning_rate)
        self.save_hyperparameters()
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        self.net = GatedPixelCNNNet(
            self.image_shape,
            num_levels,
            variant=variant,
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            kernel_size=kernel_size,
            dilations=tuple(dilations),
            causal=causal,
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints written when the stack convolutions held full kxk kernels (all but
        the masked-through taps zero in effect) load by keeping the taps each layer
        reads, which computes the same network."""
        weights = checkpoint["state_dict"]
        for name, module in self.named_modules():
            key = f"{name}.weight"
            if isinstance(module, StackConv2d) and key in weights:
                weights[key] = module.taps_of(weights[key])

    @property
    def name(self) -> str:
        """Run folder name, one per variant: ``gated_pixelcnn``, ``gated_pixelcnn_plain``,
        with ``_noncausal`` appended for the ablation."""
        name = "gated_pixelcnn" + ("_plain" if self.hparams.variant == "plain" else "")
        return name + ("" if self.hparams.causal else "_noncausal")

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        cached: bool = True,
    ) -> Tensor:
        """Exact ancestral samples in raster order (all channels of a pixel at once).

        ``cached`` computes each layer of both stacks once per position as generation
        reaches it (``genlab.nn.cached_gated_pixelcnn``), the cost of about one forward
        pass per image; ``cached=False`` runs the network on the rows drawn so far for
        every pixel. Both draw the same images from the same generator.
        """
        with evaluating(self):
            if cached:
                return self.cached_sampler(self.net, num_samples, generator=generator)
            return sample_raster(
                self.net,
                num_samples,
                self.image_shape,
                channel_by_channel=False,
                generator=generator,
                device=self.device,
            )
