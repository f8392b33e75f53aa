"""PixelCNN: causality by brute force, exact likelihoods, exact and reproducible sampling."""

from __future__ import annotations

import itertools
import math

import lightning as L
import pytest
import torch
from sampling_checks import assert_samples_follow_the_model
from torch.utils.data import DataLoader, TensorDataset

from genlab.analysis import mean_nats_per_dim
from genlab.lightning_modules.pixelcnn import PixelCNN
from genlab.nn.distributions import categorical_log_prob, sample_categorical
from genlab.nn.masked_conv import causal_mask
from genlab.nn.sampling import sample_raster


def tiny_pixelcnn(
    image_shape,
    num_levels=2,
    color_mode="independent",
    architecture="plain",
    hidden=12,
    perturbation=0.1,
):
    """A small model, its weights moved off their initialisation by ``perturbation``
    standard deviations."""
    torch.manual_seed(0)
    model = PixelCNN(
        image_shape,
        num_levels,
        color_mode=color_mode,
        architecture=architecture,
        hidden_channels=hidden,
        num_layers=2,
        kernel_size=3,
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(perturbation * torch.randn_like(parameter))
    return model.eval()


def moved_outputs(model, image, channel, row, col):
    """Boolean [C, H, W]: which subpixels' logits change when input (channel, row, col) changes."""
    changed = image.clone()
    changed[0, channel, row, col] = (image[0, channel, row, col] + 1) % model.num_levels
    with torch.no_grad():
        delta = (model(changed) - model(image)).abs().amax(dim=2)[0]
    return delta > 1e-6


CASES = [
    ((1, 5, 5), "independent", "plain"),
    ((1, 4, 7), "independent", "residual"),
    ((3, 4, 4), "independent", "plain"),
    ((3, 4, 5), "autoregressive", "plain"),
    ((3, 5, 4), "autoregressive", "residual"),
    ((3, 4, 5), "made", "plain"),
    ((3, 5, 4), "made", "residual"),
    ((1, 4, 4), "made", "residual"),
]
CHANNELS_IN_ORDER = ("autoregressive", "made")


@pytest.mark.parametrize("image_shape,color_mode,architecture", CASES)
def test_no_logit_moves_when_its_own_or_a_later_subpixel_changes(
    image_shape, color_mode, architecture
):
    model = tiny_pixelcnn(image_shape, 4, color_mode, architecture)
    channels, height, width = image_shape
    image = torch.randint(0, 4, (1, *image_shape), generator=torch.Generator().manual_seed(1))
    for c, i, j in itertools.product(range(channels), range(height), range(width)):
        moved = moved_outputs(model, image, c, i, j)
        for c_out, i_out, j_out in moved.nonzero().tolist():
            earlier_pixel = (i, j) < (i_out, j_out)
            same_pixel_earlier_channel = (
                (i, j) == (i_out, j_out) and color_mode in CHANNELS_IN_ORDER and c < c_out
            )
            assert earlier_pixel or same_pixel_earlier_channel, (
                f"logit of subpixel {(c_out, i_out, j_out)} moved when input {(c, i, j)} changed"
            )


@pytest.mark.parametrize("image_shape,color_mode,architecture", CASES)
def test_logits_do_see_the_neighbours_they_are_allowed_to(image_shape, color_mode, architecture):
    """Wide layers, so that no path is cut by chance by ReLUs that are all off."""
    model = tiny_pixelcnn(image_shape, 4, color_mode, architecture, hidden=48)
    image = torch.randint(0, 4, (1, *image_shape), generator=torch.Generator().manual_seed(2))
    channels = image_shape[0]
    assert moved_outputs(model, image, 0, 1, 1)[:, 1, 2].all(), "left neighbour ignored"
    assert moved_outputs(model, image, 0, 1, 1)[:, 2, 1].all(), "upper neighbour ignored"
    if color_mode in CHANNELS_IN_ORDER:
        for c in range(channels - 1):
            assert moved_outputs(model, image, c, 2, 2)[c + 1 :, 2, 2].all(), (
                f"later channels of a pixel ignore channel {c} of the same pixel"
            )


def test_mask_b_opens_the_centre_only_to_earlier_and_own_groups():
    mask_a = causal_mask("A", 3, 6, 3, groups=3)
    mask_b = causal_mask("B", 3, 6, 3, groups=3)
    expected_a = torch.tensor([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]])
    assert torch.equal(mask_a[:, :, 1, 1], expected_a.float())
    assert torch.equal(mask_b[:, :, 1, 1], (expected_a + torch.eye(3).repeat_interleave(2, 0)))
    assert mask_b[:, :, 2, :].sum() == 0 and mask_b[:, :, 1, 2].sum() == 0
    assert mask_b[:, :, 0, :].min() == 1 and mask_b[:, :, 1, 0].min() == 1


@pytest.mark.parametrize("color_mode", ["independent", "autoregressive", "made"])
def test_log_prob_equals_the_sum_of_per_subpixel_log_probabilities(color_mode):
    model = tiny_pixelcnn((3, 3, 2), 4, color_mode)
    x = torch.randint(0, 4, (5, 3, 3, 2), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(x)
        log_prob = model.log_prob(x)
    assert logits.shape == (5, 3, 4, 3, 2)
    for b in range(5):
        by_hand = 0.0
        for c, i, j in itertools.product(range(3), range(3), range(2)):
            weights = [math.exp(v) for v in logits[b, c, :, i, j].tolist()]
            by_hand += math.log(weights[int(x[b, c, i, j])] / sum(weights))
        assert log_prob[b].item() == pytest.approx(by_hand, abs=1e-4)


def test_validation_reports_nats_and_bits_per_dim_of_the_whole_split():
    model = tiny_pixelcnn((1, 4, 4), 2)
    x = torch.randint(0, 2, (10, 1, 4, 4), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected_nats = -model.log_prob(x).sum().item() / (10 * 16)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader(TensorDataset(x), batch_size=3)
    metrics = trainer.validate(model, loader, verbose=False)[0]
    assert metrics["val/nats_per_dim"] == pytest.approx(expected_nats, rel=1e-5)
    assert metrics["val/bits_per_dim"] == pytest.approx(expected_nats / math.log(2), rel=1e-5)
    assert mean_nats_per_dim(model, loader) == pytest.approx(expected_nats, rel=1e-5)


def test_bad_images_are_rejected_with_what_was_expected():
    model = tiny_pixelcnn((1, 4, 4), 2)
    with pytest.raises(ValueError, match=r"shape \[B, 1, 4, 4\]"):
        model.log_prob(torch.zeros(2, 1, 5, 4, dtype=torch.long))
    out_of_range = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    out_of_range[1, 0, 2, 3] = 2
    with pytest.raises(ValueError, match=r"values in 0..1, got values in 0..2"):
        model.log_prob(out_of_range)
    with pytest.raises(TypeError, match="integer images"):
        model.log_prob(torch.zeros(2, 1, 4, 4))


def test_sample_categorical_matches_the_probabilities():
    logits = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4])).expand(40_000, 4)
    draws = sample_categorical(logits, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws, minlength=4).float() / len(draws)
    assert torch.allclose(frequencies, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.01)


@pytest.mark.parametrize("uniform", [0.0, 1 - 2**-24], ids=["lowest", "highest"])
def test_sample_categorical_never_draws_a_masked_index(uniform, monkeypatch):
    """The extreme uniforms land on the first and last index of nonzero probability,
    however the probabilities round, never on a masked (-inf) one beside them."""
    logits = torch.tensor([[float("-inf"), 0.3, 1.1, 0.7, float("-inf")]])
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.full((1, 1), uniform))
    draw = sample_categorical(logits).item()
    assert draw == (1 if uniform == 0 else 3)


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "naive"])
@pytest.mark.parametrize(
    "image_shape,color_mode,architecture",
    [((1, 2, 3), "independent", "plain"), ((3, 1, 2), "autoregressive", "residual")]
    + [((3, 1, 2), "made", "residual")],
)
def test_samples_follow_the_model_distribution_exactly(
    image_shape, color_mode, architecture, cached
):
    """Every image scored with log_prob against sample frequencies, for both samplers;
    the weights are moved far enough that each subpixel depends strongly on the ones
    before it, so a sampler that reads the wrong ones, or draws at another temperature,
    shows."""
    model = tiny_pixelcnn(image_shape, 2, color_mode, architecture, hidden=18, perturbation=0.4)
    samples = model.sample(30_000, generator=torch.Generator().manual_seed(0), cached=cached)
    assert_samples_follow_the_model(model, samples, 2)


def test_made_head_sampler_draws_what_the_generic_sampler_draws():
    """Trunk once per pixel plus the head per channel must give the very same images as
    the full network per channel, uniform for uniform."""
    model = tiny_pixelcnn((3, 3, 4), 4, "made", "residual")
    fast = model.sample(5, generator=torch.Generator().manual_seed(4), cached=False)
    generic = sample_raster(
        model.net, 5, (3, 3, 4), channel_by_channel=True, generator=torch.Generator().manual_seed(4)
    )
    assert torch.equal(fast, generic)
    assert fast.unique().numel() > 1


@pytest.mark.parametrize("color_mode", ["autoregressive", "made"])
def test_sampling_with_a_fixed_generator_is_reproducible(color_mode):
    model = tiny_pixelcnn((3, 4, 4), 4, color_mode, "residual")
    first = model.sample(6, generator=torch.Generator().manual_seed(7))
    again = model.sample(6, generator=torch.Generator().manual_seed(7))
    other = model.sample(6, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (6, 3, 4, 4) and first.dtype == torch.long
    assert first.min() >= 0 and first.max() <= 3


def test_categorical_log_prob_sums_every_position():
    logits = torch.zeros(2, 3, 5)
    x = torch.zeros(2, 5, dtype=torch.long)
    assert torch.allclose(
        categorical_log_prob(logits, x, dim=1), torch.full((2,), 5 * math.log(1 / 3))
    )
