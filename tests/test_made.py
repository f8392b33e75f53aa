"""MADE: brute-force dependency checks for random orderings, normalisation, sampling."""

from __future__ import annotations

import pytest
import torch
from sampling_checks import assert_samples_follow_the_model

from genlab.lightning_modules import MADE
from genlab.nn.made import MADENet


def perturbed(net):
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return net


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "num_dims,num_levels,hidden", [(5, 3, (32, 32)), (8, 2, (64,)), (1, 4, (8,))]
)
def test_outputs_depend_exactly_on_earlier_dimensions(seed, num_dims, num_levels, hidden):
    ordering = torch.randperm(num_dims, generator=torch.Generator().manual_seed(seed))
    net = perturbed(MADENet(num_dims, num_levels, hidden, ordering))
    position = {dim: rank for rank, dim in enumerate(ordering.tolist())}
    x = torch.randint(0, num_levels, (1, num_dims), generator=torch.Generator().manual_seed(9))
    for changed in range(num_dims):
        other = x.clone()
        other[0, changed] = (x[0, changed] + 1) % num_levels
        with torch.no_grad():
            moved = (net(other) - net(x)).abs().amax(-1)[0] > 1e-6
        for output in range(num_dims):
            if position[changed] >= position[output]:
                assert not moved[output], f"output {output} reads later input {changed}"
    first = ordering[0]
    with torch.no_grad():
        logits = net(torch.randint(0, num_levels, (4, num_dims)))[:, first]
    assert torch.allclose(logits, logits[:1].expand_as(logits)), "first output reads inputs"


def test_last_output_reads_every_earlier_dimension():
    net = perturbed(MADENet(4, 2, (64, 64), torch.tensor([2, 0, 3, 1])))
    x = torch.zeros(1, 4, dtype=torch.long)
    for changed in (2, 0, 3):
        other = x.clone()
        other[0, changed] = 1
        with torch.no_grad():
            assert (net(other)[0, 1] - net(x)[0, 1]).abs().max() > 1e-6


@pytest.mark.parametrize("data_shape,ordering", [((3,), "random"), ((1, 2, 2), "natural")])
def test_samples_follow_the_model_distribution_exactly(data_shape, ordering):
    """Weights moved far enough that each dimension depends strongly on the earlier ones,
    so a sampler that reads the wrong ones, or draws at another temperature, shows."""
    model = perturbed(MADE(data_shape, 3, hidden_units=(32,), ordering=ordering))
    samples = model.sample(30_000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (30_000, *data_shape)
    assert_samples_follow_the_model(model, samples, 3)


def test_image_logits_have_the_image_layout():
    model = MADE((1, 3, 4), 2, hidden_units=(8,))
    assert model(torch.zeros(5, 1, 3, 4, dtype=torch.long)).shape == (5, 1, 2, 3, 4)
    with pytest.raises(ValueError, match=r"shape \[B, 1, 3, 4\]"):
        model(torch.zeros(5, 12, dtype=torch.long))
