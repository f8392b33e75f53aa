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
from genlab.nn.cached_gated_pixelcnn import sample_cached_gated
from genlab.nn.distributions import sample_categorical
from genlab.nn.gated_pixelcnn import StackConv2d, middle_dilations, stack_mask


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


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "naive"])
@pytest.mark.parametrize("variant,hidden,perturbation", [("gated", 24, 0.25), ("plain", 16, 0.3)])
def test_samples_follow_the_model_distribution_exactly(variant, hidden, perturbation, cached):
    """Weights moved far enough that each pixel depends strongly on those before it, so a
    sampler that reads the wrong pixels, or draws at another temperature, shows."""
    model = tiny_gated(
        (1, 2, 3), num_levels=2, variant=variant, hidden=hidden, perturbation=perturbation
    )
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0), cached=cached)
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


CACHED_CASES = [
    ((1, 5, 6), "gated", (2,)),
    ((3, 4, 5), "gated", (1, 2)),
    ((1, 7, 6), "gated", (3,)),
    ((1, 5, 6), "plain", (1,)),
    ((2, 4, 4), "plain", (1,)),
]


@pytest.mark.parametrize("image_shape,variant,dilations", CACHED_CASES)
def test_cached_steps_see_the_logits_of_a_full_pass(image_shape, variant, dilations):
    """Replaying images through the cached sampler, every step's logits equal one full
    forward pass, dilated layers included."""
    model = tiny_gated(image_shape, variant=variant, num_layers=4, dilations=dilations)
    images = torch.randint(0, 4, (3, *image_shape), generator=torch.Generator().manual_seed(1))
    replayed, logits = sample_cached_gated(model.net, 3, given=images, return_logits=True)
    assert torch.equal(replayed, images)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(images), rtol=0, atol=1e-5)


@pytest.mark.parametrize("image_shape,variant,dilations", CACHED_CASES)
def test_cached_and_naive_sampling_draw_the_same_images(image_shape, variant, dilations):
    model = tiny_gated(image_shape, variant=variant, num_layers=4, dilations=dilations)
    draws = [
        model.sample(5, generator=torch.Generator().manual_seed(2), cached=cached)
        for cached in (True, False)
    ]
    assert torch.equal(draws[0], draws[1])


def completed_pixel_by_pixel(model, images, drawn, generator):
    """Completion by the definition: a full forward pass for every drawn pixel."""
    images = images.clone()
    width = images.shape[-1]
    for index in drawn:
        row, col = divmod(index, width)
        with torch.no_grad():
            logits = model(images)[:, :, :, row, col]
        images[:, :, row, col] = sample_categorical(logits, generator)
    return images


@pytest.mark.parametrize("image_shape,variant,dilations", CACHED_CASES[1:4])
def test_completion_draws_only_its_positions_as_forward_passes_would(
    image_shape, variant, dilations
):
    model = tiny_gated(image_shape, variant=variant, num_layers=4, dilations=dilations)
    images = torch.randint(0, 4, (6, *image_shape), generator=torch.Generator().manual_seed(3))
    drawn = range(5, 12)
    completed = model.complete(images, drawn, generator=torch.Generator().manual_seed(4))
    naive = completed_pixel_by_pixel(model, images, drawn, torch.Generator().manual_seed(4))
    assert torch.equal(completed, naive)
    untouched = torch.ones(image_shape[1:], dtype=torch.bool).flatten()
    untouched[5:12] = False
    assert torch.equal(completed.flatten(2)[:, :, untouched], images.flatten(2)[:, :, untouched])
    assert not torch.equal(completed, images)
    again, logits = model.complete(
        images, drawn, generator=torch.Generator().manual_seed(4), return_logits=True, stop=15
    )
    assert torch.equal(again, completed)
    with torch.no_grad():
        full = model(completed).flatten(3)
    torch.testing.assert_close(logits.flatten(3)[..., :15], full[..., :15], rtol=0, atol=1e-5)
    assert (logits.flatten(3)[..., 15:] == 0).all()


def test_completion_ranges_outside_the_image_are_named():
    model = tiny_gated((1, 3, 3))
    images = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="drawn must be a range"):
        model.complete(images, range(4, 12))
    with pytest.raises(ValueError, match="stop must lie"):
        model.complete(images, range(2, 6), return_logits=True, stop=5)
    with pytest.raises(ValueError, match=r"values in 0\.\.3"):
        model.complete(images + 4, range(0, 2))


def test_the_non_causal_ablation_samples_alike_from_both_samplers():
    """Its first layer reads the pixel being drawn, which both samplers hold at level 0."""
    model = tiny_gated((1, 4, 5), causal=False)
    draws = [
        model.sample(5, generator=torch.Generator().manual_seed(2), cached=cached)
        for cached in (True, False)
    ]
    assert torch.equal(draws[0], draws[1])


def full_kernel(layer: StackConv2d, masked_out: float) -> torch.Tensor:
    """The layer's taps laid on the full kxk window, ``masked_out`` everywhere else (the
    layout of the masked convolutions the layer replaces)."""
    k, centre = layer.window, layer.window // 2
    full = torch.full((*layer.weight.shape[:2], k, k), masked_out)
    rows, cols = layer.kernel_size
    if layer.stack == "vertical":
        full[..., :rows, :] = layer.weight
    else:
        full[..., centre, :cols] = layer.weight[..., 0, :]
    return full


@pytest.mark.parametrize("stack", ["vertical", "horizontal"])
@pytest.mark.parametrize("include_centre", [False, True])
@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (5, 1), (3, 2)])
def test_a_stack_convolution_equals_the_masked_full_kernel(
    stack, include_centre, kernel_size, dilation
):
    torch.manual_seed(0)
    layer = StackConv2d(stack, 2, 3, kernel_size, include_centre, dilation)
    mask = stack_mask(stack, kernel_size, include_centre)
    assert layer.weight[0, 0].numel() == mask.sum()
    x = torch.randn(2, 2, 7, 8)
    masked = torch.nn.functional.conv2d(
        x,
        full_kernel(layer, masked_out=5.0) * mask,
        layer.bias,
        padding=dilation * (kernel_size // 2),
        dilation=dilation,
    )
    torch.testing.assert_close(layer(x), masked, rtol=0, atol=1e-5)


def test_a_checkpoint_with_full_kernels_loads_and_computes_the_same_network():
    """Checkpoints written when the stacks held masked kxk kernels: the taps each layer
    reads are kept, whatever the masked-out taps held."""
    model = tiny_gated((1, 5, 6))
    old_state = model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, StackConv2d):
            old_state[f"{name}.weight"] = full_kernel(module, masked_out=7.0)
    checkpoint = {"state_dict": old_state}
    fresh = tiny_gated((1, 5, 6), perturbation=0.5)
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    x = torch.randint(0, 4, (2, 1, 5, 6))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x))


def test_the_course_network_holds_only_taps_its_masks_read():
    """8 layers of 64 channels, 3x3 windows, 256 levels: 647,488 parameters, where full
    3x3 kernels held 1,222,720 (575,232 of them masked to zero: the bottom row of every
    vertical kernel, two rows in the first layer; 7 of 9 taps of every horizontal
    kernel, 8 in the first layer)."""
    model = GatedPixelCNN((1, 28, 28), 256)
    assert sum(parameter.numel() for parameter in model.parameters()) == 647_488
