"""Cached PixelCNN sampling: every step's logits are those of a full forward pass, and
the draws are the naive sampler's, for every colour mode and architecture."""

from __future__ import annotations

import pytest
import torch

from genlab.lightning_modules.pixelcnn import PixelCNN
from genlab.nn.cached_pixelcnn import CONVOLVE_FROM_BATCH, group_slices, sample_cached

VARIANTS = [
    (color_mode, architecture)
    for color_mode in ("independent", "autoregressive", "made")
    for architecture in ("plain", "residual")
]


def perturbed_pixelcnn(image_shape, num_levels, color_mode, architecture, kernel_size=5):
    """A small PixelCNN on a non-square image, its weights moved off their
    initialisation so that every tap (and every bias) matters."""
    torch.manual_seed(0)
    model = PixelCNN(
        image_shape,
        num_levels,
        color_mode=color_mode,
        architecture=architecture,
        hidden_channels=12,
        num_layers=3,
        kernel_size=kernel_size,
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


# Below CONVOLVE_FROM_BATCH the rows above are one gathered matrix product, from it on a
# convolution: both ways are checked.
BATCHES = [4, CONVOLVE_FROM_BATCH]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("color_mode,architecture", VARIANTS)
def test_each_steps_logits_equal_one_forward_pass_over_the_finished_sample(
    color_mode, architecture, batch
):
    channels = 1 if color_mode == "independent" and architecture == "plain" else 3
    model = perturbed_pixelcnn((channels, 5, 7), 4, color_mode, architecture)
    images, step_logits = sample_cached(
        model.net, batch, generator=torch.Generator().manual_seed(1), return_logits=True
    )
    with torch.no_grad():
        replayed = model.net(images)
    assert step_logits.shape == replayed.shape == (batch, channels, 4, 5, 7)
    assert (step_logits - replayed).abs().max() < 1e-5
    assert images.unique().numel() == 4


@pytest.mark.parametrize("color_mode,architecture", VARIANTS)
def test_cached_and_naive_samplers_draw_the_same_images(color_mode, architecture):
    model = perturbed_pixelcnn((3, 4, 6), 3, color_mode, architecture, kernel_size=3)
    cached = model.sample(6, generator=torch.Generator().manual_seed(5), cached=True)
    naive = model.sample(6, generator=torch.Generator().manual_seed(5), cached=False)
    assert torch.equal(cached, naive)
    assert cached.dtype == torch.long and cached.shape == (6, 3, 4, 6)


def test_replaying_any_image_gives_the_forward_pass_logits():
    """Teacher forcing an arbitrary (not sampled) image through the cached path."""
    model = perturbed_pixelcnn((3, 6, 5), 4, "autoregressive", "residual", kernel_size=7)
    images = torch.randint(0, 4, (3, 3, 6, 5), generator=torch.Generator().manual_seed(2))
    replayed, step_logits = sample_cached(model.net, 0, given=images, return_logits=True)
    assert torch.equal(replayed, images)
    with torch.no_grad():
        assert (step_logits - model.net(images)).abs().max() < 1e-5


def test_the_course_network_on_binary_mnist_shapes_is_exact():
    """The benchmark's configuration: 7x7 mask A, five 7x7 mask-B layers of 64 filters."""
    torch.manual_seed(0)
    model = PixelCNN((1, 28, 28), 2).eval()
    images, step_logits = sample_cached(model.net, 2, return_logits=True)
    with torch.no_grad():
        assert (step_logits - model.net(images)).abs().max() < 1e-5


def test_channel_groups_are_contiguous_ranges_covering_every_channel():
    assert group_slices(7, 3) == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert group_slices(4, 1) == [slice(0, 4)]


@pytest.mark.parametrize("color_mode,architecture", VARIANTS)
def test_under_bf16_autocast_the_cached_sampler_still_draws_in_float32(color_mode, architecture):
    """A ``predict`` under ``--trainer.precision bf16-mixed`` samples inside autocast; the
    buffers are written in place, so the sampler must keep every layer in float32."""
    model = perturbed_pixelcnn((3, 4, 5), 3, color_mode, architecture, kernel_size=3)
    plain = model.sample(4, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = model.sample(4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(plain, autocast)


@pytest.mark.parametrize("color_mode", ["autoregressive", "made"])
def test_completion_of_every_pixel_is_sampling_and_of_a_span_keeps_the_rest(color_mode):
    model = perturbed_pixelcnn((3, 4, 5), 4, color_mode, "plain")
    images = torch.randint(0, 4, (5, 3, 4, 5), generator=torch.Generator().manual_seed(2))
    everything = model.complete(images, range(20), generator=torch.Generator().manual_seed(3))
    sampled = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(everything, sampled)
    span, logits = model.complete(
        images, range(6, 13), generator=torch.Generator().manual_seed(3), return_logits=True
    )
    flat, original = span.flatten(2), images.flatten(2)
    assert torch.equal(flat[..., :6], original[..., :6])
    assert torch.equal(flat[..., 13:], original[..., 13:])
    assert not torch.equal(flat[..., 6:13], original[..., 6:13])
    with torch.no_grad():
        assert (logits - model.net(span)).abs().max() < 1e-5
