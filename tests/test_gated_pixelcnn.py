"""Gated PixelCNN: causality by brute force (and the ablation failing it), no blind spot,
exact likelihoods and exact sampling, for the gated and the plain variant."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from sampling_checks import assert_samples_follow_the_model

from genlab.analysis import input_gradient, receptive_field
from genlab.lightning_modules import GatedPixelCNN
from genlab.nn.gated_pixelcnn import middle_dilations, stack_mask


def tiny_gated(
    image_shape,
    num_levels=4,
    variant="gated",
    causal=True,
    hidden=12,
    num_layers=3,
    dilations=(2,),
    perturbation=0.1,
):
    """A small model, its weights moved off their initialisation by ``perturbation``
    standard deviations."""
    torch.manual_seed(0)
    model = GatedPixelCNN(
        image_shape,
        num_levels,
        variant=variant,
        hidden_channels=hidden,
        num_layers=num_layers,
        kernel_size=3,
        dilations=dilations,
        causal=causal,
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(perturbation * torch.randn_like(parameter))
    return model.eval()


def leaks(model, image):
    """Every (input subpixel, output subpixel) pair where changing the input moves the
    output's logits although the input is not strictly earlier in raster order."""
    channels, height, width = image.shape[1:]
    found = []
    for c, i, j in itertools.product(range(channels), range(height), range(width)):
        changed = image.clone()
        changed[0, c, i, j] = (image[0, c, i, j] + 1) % model.num_levels
        with torch.no_grad():
            moved = (model(changed) - model(image)).abs().amax(dim=2)[0] > 1e-6
        for c_out, i_out, j_out in moved.nonzero().tolist():
            if not (i, j) < (i_out, j_out):
                found.append(((c, i, j), (c_out, i_out, j_out)))
    return found


CASES = [((1, 5, 6), "gated"), ((3, 4, 5), "gated"), ((1, 5, 6), "plain"), ((2, 4, 4), "plain")]


@pytest.mark.parametrize("image_shape,variant", CASES)
def test_no_logit_moves_when_its_own_or_a_later_pixel_changes(image_shape, variant):
    model = tiny_gated(image_shape, variant=variant)
    image = torch.randint(0, 4, (1, *image_shape), generator=torch.Generator().manual_seed(1))
    assert leaks(model, image) == []


@pytest.mark.parametrize("variant", ["gated", "plain"])
def test_the_non_causal_ablation_reads_its_own_pixel_and_nothing_later(variant):
    model = tiny_gated((1, 4, 5), variant=variant, causal=False)
    image = torch.randint(0, 4, (1, 1, 4, 5), generator=torch.Generator().manual_seed(1))
    found = leaks(model, image)
    assert found, "the ablation must leak"
    assert all(source[1:] == target[1:] for source, target in found), "only the pixel itself"


@pytest.mark.parametrize("variant", ["gated", "plain"])
def test_no_blind_spot_every_earlier_pixel_is_read(variant):
    """Three layers of 3x3 kernels reach two rows up and two columns either side, so the
    prediction of (2, 2) in a 5x5 image reads every earlier pixel, including (1, 3) and
    (0, 4), which a plain PixelCNN of that depth never sees."""
    model = tiny_gated((1, 5, 5), variant=variant, hidden=32, dilations=(1,))
    field = receptive_field(model, (0, 2, 2), torch.randint(0, 4, (1, 5, 5)))
    earlier = torch.zeros(5, 5, dtype=torch.bool)
    earlier[:2] = True
    earlier[2, :2] = True
    assert (field[earlier] > 0).all(), field
    assert (field[~earlier] == 0).all(), field


def test_dilation_widens_the_vertical_reach():
    plain_reach = receptive_field(tiny_gated((1, 9, 9), dilations=(1,)), (0, 8, 4)) > 0
    dilated_reach = receptive_field(tiny_gated((1, 9, 9), dilations=(3,)), (0, 8, 4)) > 0
    assert not plain_reach[3].any() and dilated_reach[3].any()


def test_stack_masks_and_dilation_schedule():
    assert stack_mask("vertical", 3, include_centre=False).tolist() == [
        [1, 1, 1],
        [0, 0, 0],
        [0, 0, 0],
    ]
    assert stack_mask("vertical", 3, include_centre=True)[1].tolist() == [1, 1, 1]
    assert stack_mask("horizontal", 5, include_centre=False).tolist()[2] == [1, 1, 0, 0, 0]
    assert stack_mask("horizontal", 5, include_centre=True).sum() == 3
    assert middle_dilations(6, (2, 4)) == [1, 2, 4, 2, 4, 1]


@pytest.mark.parametrize("variant", ["gated", "plain"])
def test_log_prob_is_the_sum_of_the_conditionals(variant):
    model = tiny_gated((2, 3, 3), num_levels=5, variant=variant)
    x = torch.randint(0, 5, (4, 2, 3, 3), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(x)
        by_hand = sum(
            torch.log_softmax(logits[:, c, :, i, j], -1).gather(1, x[:, c, i, j, None])[:, 0]
            for c, i, j in itertools.product(range(2), range(3), range(3))
        )
        assert logits.shape == (4, 2, 5, 3, 3)
        assert torch.allclose(model.log_prob(x), by_hand, atol=1e-5)


@pytest.mark.parametrize("variant", ["gated", "plain"])
def test_samples_follow_the_model_distribution_exactly(variant):
    """Weights moved far enough that each pixel depends strongly on those before it, so a
    sampler that reads the wrong pixels, or draws at another temperature, shows."""
    model = tiny_gated((1, 2, 3), num_levels=2, variant=variant, hidden=24, perturbation=0.25)
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert_samples_follow_the_model(model, samples, 2)


def test_a_256_level_model_takes_8_bit_images_and_rejects_others():
    model = tiny_gated((1, 4, 4), num_levels=256, num_layers=2)
    x = torch.randint(0, 256, (2, 1, 4, 4))
    assert model(x).shape == (2, 1, 256, 4, 4)
    nats_per_dim = -model.log_prob(x) / 16
    assert (nats_per_dim > 0).all() and (nats_per_dim < 3 * math.log(256)).all()
    with pytest.raises(ValueError, match="0..255"):
        model.log_prob(torch.full((1, 1, 4, 4), 256))
    gradient = input_gradient(model, (0, 3, 3))
    assert gradient[0, 3, 3] == 0 and gradient[0, 2, 3] > 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="variant"):
        GatedPixelCNN((1, 4, 4), 2, variant="fancy")
    with pytest.raises(ValueError, match="kernel_size"):
        GatedPixelCNN((1, 4, 4), 2, kernel_size=4)


def test_each_variant_has_its_own_run_folder_name():
    assert tiny_gated((1, 3, 3)).name == "gated_pixelcnn"
    assert tiny_gated((1, 3, 3), variant="plain").name == "gated_pixelcnn_plain"
    assert tiny_gated((1, 3, 3), causal=False).name == "gated_pixelcnn_noncausal"
