"""PixelCNN (van den Oord et al., 2016, "Pixel Recurrent Neural Networks").

An exact autoregressive likelihood over the subpixels of an image in raster order,
``log p(x) = sum_i log p(x_i | x_<i)``, computed in one pass by masked convolutions;
sampling draws one subpixel at a time.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.lightning_modules.base import ImageAutoregressiveModel
from genlab.nn.cached_pixelcnn import sample_cached
from genlab.nn.modes import evaluating
from genlab.nn.pixelcnn import Architecture, ColorMode, PixelCNNNet
from genlab.nn.sampling import sample_raster, sample_raster_with_pixel_head


class PixelCNN(ImageAutoregressiveModel):
    """PixelCNN over images ``[B, C, H, W]`` with ``num_levels`` values per subpixel.

    Args:
        image_shape: (channels, height, width) of the data; linked from the data module.
        num_levels: values per subpixel (K); linked from the data module.
        color_mode: "independent" (each channel sees previous pixels only),
            "autoregressive" (R, then G given R, then B given R and G within a pixel,
            through channel-group masks in every layer) or "made" (the trunk sees
            previous pixels only; a MADE over the current pixel's channels, conditioned
            on the trunk's feature, orders them).
        architecture: "plain" (course network for binary data) or "residual" (residual
            blocks with a causal layer norm, for colour data).
        hidden_channels: filters of every hidden layer (64 in the course network).
        num_layers: mask-B layers (plain) or residual blocks (residual).
        kernel_size: kernel of the mask-B layers or of each block's spatial convolution.
        made_hidden_units: hidden widths of the MADE head (color_mode "made" only).
        learning_rate: Adam's step size.
    """

    cached_sampler = staticmethod(sample_cached)

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_levels: int = 2,
        color_mode: ColorMode = "independent",
        architecture: Architecture = "plain",
        hidden_channels: int = 64,
        num_layers: int = 5,
        kernel_size: int = 7,
        made_hidden_units: tuple[int, ...] = (128,),
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__(learning_rate)
        self.save_hyperparameters()
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        self.net = PixelCNNNet(
            self.image_shape,
            num_levels,
            color_mode=color_mode,
            architecture=architecture,
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            kernel_size=kernel_size,
            made_hidden_units=tuple(made_hidden_units),
        )

    @property
    def name(self) -> str:
        """Run folder name: the MADE-head variant gets its own, ``pixelcnn_made``."""
        return "pixelcnn_made" if self.hparams.color_mode == "made" else "pixelcnn"

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        cached: bool = True,
    ) -> Tensor:
        """Exact ancestral samples, raster order, channel by channel when the colour
        channels depend on each other.

        ``cached`` computes each layer once per position as generation reaches it
        (``genlab.nn.cached_pixelcnn``), the cost of one forward pass per image;
        ``cached=False`` runs the network on the rows drawn so far for every subpixel
        (with the MADE head, the trunk once per pixel and only the head once per
        channel). Both draw the same images from the same generator.
        """
        with evaluating(self):
            if cached:
                return self.cached_sampler(self.net, num_samples, generator=generator)
            if self.hparams.color_mode == "made":
                return sample_raster_with_pixel_head(
                    self.net.features,
                    self.net.pixel_logits,
                    num_samples,
                    self.image_shape,
                    generator=generator,
                    device=self.device,
                )
            return sample_raster(
                self.net,
                num_samples,
                self.image_shape,
                channel_by_channel=self.hparams.color_mode == "autoregressive",
                generator=generator,
                device=self.device,
            )
