"""Receptive fields: zero at and after the target for causal models; the blind spot."""

from __future__ import annotations

import pytest
import torch

from genlab.analysis import input_gradient, receptive_field
from genlab.lightning_modules.pixelcnn import PixelCNN


def pixelcnn(image_shape, color_mode="independent", architecture="plain", num_layers=3):
    torch.manual_seed(0)
    return PixelCNN(
        image_shape,
        4,
        color_mode=color_mode,
        architecture=architecture,
        hidden_channels=24,
        num_layers=num_layers,
        kernel_size=3,
    )


def subpixel_order(channel, row, col, width, channels, color_mode):
    """Rank of a subpixel in the model's generation order (channels of one pixel tie in
    the independent mode)."""
    pixel = row * width + col
    return pixel * channels + (channel if color_mode in ("autoregressive", "made") else 0)


CASES = [
    ((1, 7, 7), "independent", "plain"),
    ((3, 6, 6), "independent", "residual"),
    ((3, 6, 6), "autoregressive", "plain"),
    ((3, 6, 6), "autoregressive", "residual"),
    ((3, 6, 6), "made", "residual"),
]


def targets(channels):
    return [(channels - 1, 3, 2), (0, 2, 4), (channels // 2, 4, 0)]


@pytest.mark.parametrize("image_shape,color_mode,architecture", CASES)
def test_gradient_is_zero_at_and_after_the_target(image_shape, color_mode, architecture):
    model = pixelcnn(image_shape, color_mode, architecture)
    channels, height, width = image_shape
    image = torch.randint(0, 4, image_shape, generator=torch.Generator().manual_seed(0))
    for target in targets(channels):
        gradient = input_gradient(model, target, image)
        rank = subpixel_order(*target, width, channels, color_mode)
        for c, i, j in torch.nonzero(gradient).tolist():
            assert subpixel_order(c, i, j, width, channels, color_mode) < rank, (
                f"target {target} has a gradient at the later input {(c, i, j)}"
            )
        assert gradient.sum() > 0, "the prediction reads nothing at all"
        _, row, col = target
        assert (gradient[:, row, :col] > 0).all(), "every subpixel left of it in its row"
        field = receptive_field(model, target, image)
        assert field.shape == (height, width)
        assert field[row, col + 1 :].sum() == 0 and field[row + 1 :].sum() == 0


@pytest.mark.parametrize("image_shape,color_mode,architecture", CASES)
def test_the_target_reads_exactly_the_earlier_channels_of_its_own_pixel(
    image_shape, color_mode, architecture
):
    model = pixelcnn(image_shape, color_mode, architecture)
    channels = image_shape[0]
    image = torch.randint(0, 4, image_shape, generator=torch.Generator().manual_seed(0))
    for channel, row, col in targets(channels):
        gradient = input_gradient(model, (channel, row, col), image)
        in_order = color_mode in ("autoregressive", "made")
        assert (gradient[:, row, col] > 0).tolist() == [
            in_order and c < channel for c in range(channels)
        ], f"target {(channel, row, col)}"


def test_plain_pixelcnn_has_a_blind_spot_up_and_to_the_right():
    """A 7x7 mask-A stem and two 3x3 mask-B layers: three rows up, the prediction of
    (8, 4) reads as far right as column 9, yet in the row just above it stops at column
    7, so (7, 8), (7, 9) and (6, 9) are earlier pixels, nearer than ones it does read,
    that it never sees."""
    model = pixelcnn((1, 12, 12), num_layers=2)
    seen = receptive_field(model, (0, 8, 4)) > 0
    assert seen[5, 9] and seen[7, 7] and seen[8, :4].all()
    assert not seen[7, 8] and not seen[7, 9] and not seen[6, 9]
