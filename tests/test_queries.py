"""Probability queries checked against brute force: a tiny PixelCNN on 4x4 binary images,
whose joint distribution is the table of all 65,536 images' probabilities."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from genlab.analysis import (
    Estimate,
    first_pixel_marginal,
    middle_given_above_left,
    middle_given_all_others,
    middle_given_below_right,
    middle_pixel,
    middle_pixel_marginal,
    pixel_given_all_others,
    sample_bottom_given_top,
    sample_in_raster_order,
    sample_top_given_bottom,
)
from genlab.analysis.queries import _self_normalised
from genlab.callbacks import QueryPanel
from genlab.callbacks.queries import conditioning_images
from genlab.lightning_modules import PixelCNN

SHAPE = (1, 4, 4)
MIDDLE = 2 * 4 + 2  # raster index of the middle pixel (2, 2)
RASTER = torch.arange(16)
TOP = RASTER < 8


def tiny_pixelcnn(image_shape=SHAPE):
    """Weights perturbed hard enough that pixels depend strongly on each other (about
    0.46 nats per pixel, against log 2 = 0.69 for independent fair coins)."""
    torch.manual_seed(0)
    model = PixelCNN(
        image_shape, 2, architecture="plain", hidden_channels=8, num_layers=1, kernel_size=3
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Thousands of tiny forward passes: thread hand-offs would cost more than the maths."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model():
    return tiny_pixelcnn()


@pytest.fixture(scope="module")
def joint(model):
    """Every binary 4x4 image, flattened in raster order ``[65536, 16]``, and its
    probability ``[65536]`` (float64)."""
    codes = torch.arange(2**16)
    pixels = (codes[:, None] >> (15 - RASTER)) & 1
    with torch.no_grad():
        probs = model.log_prob(pixels.view(-1, *SHAPE)).double().exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    return pixels, probs


@pytest.fixture(scope="module")
def images(joint):
    """Three conditioning images drawn from the model's own distribution."""
    pixels, probs = joint
    picks = torch.multinomial(probs, 3, generator=seeded(0))
    return pixels[picks].view(-1, *SHAPE)


def conditional(joint, image, known, target):
    """Brute-force ``p(pixel target | pixels where known)`` over the two values."""
    pixels, probs = joint
    consistent = (pixels[:, known] == image.flatten()[known]).all(dim=1)
    weight = probs * consistent
    by_value = torch.stack([weight[pixels[:, target] == k].sum() for k in (0, 1)])
    return by_value / by_value.sum()


def half_distribution(joint, image, known):
    """Brute-force distribution ``[256]`` of the 8 unknown pixels (coded in raster order)
    given the 8 pixels where ``known``."""
    pixels, probs = joint
    consistent = (pixels[:, known] == image.flatten()[known]).all(dim=1)
    codes = half_codes(pixels.view(-1, *SHAPE), ~known)
    table = torch.zeros(256, dtype=torch.float64).index_add_(0, codes, probs * consistent)
    return table / table.sum()


def half_codes(images, unknown):
    """The 8 pixels of each image where ``unknown`` as an integer 0..255."""
    bits = images.flatten(1)[:, unknown]
    return (bits << torch.arange(7, -1, -1)).sum(dim=1)


def frequencies_match(samples_codes, truth, sigmas=5.0):
    """Whether every configuration's sample frequency is within ``sigmas`` binomial
    standard deviations of its probability, plus two counts for the rare ones. Five
    sigmas over 256 configurations keep the chance of a false alarm below about 1e-4."""
    n = len(samples_codes)
    frequencies = torch.bincount(samples_codes, minlength=256).double() / n
    tolerance = sigmas * (truth * (1 - truth) / n).sqrt() + 2 / n
    return bool(((frequencies - truth).abs() <= tolerance).all())


def close_within_errors(estimate, truth):
    """Within 4 reported standard errors, plus a tiny absolute slack."""
    return bool(((estimate.probs - truth).abs() <= 4 * estimate.standard_error + 1e-4).all())


def test_middle_pixel_is_the_centre(model):
    assert middle_pixel(model) == (2, 2)


def test_exact_queries_match_brute_force(model, joint, images):
    nothing = torch.zeros(16, dtype=torch.bool)
    assert torch.allclose(
        first_pixel_marginal(model), conditional(joint, images[0], nothing, 0), atol=1e-5
    )
    for image in images:
        above_left = conditional(joint, image, RASTER < MIDDLE, MIDDLE)
        all_others = conditional(joint, image, RASTER != MIDDLE, MIDDLE)
        assert torch.allclose(middle_given_above_left(model, image), above_left, atol=1e-5)
        assert torch.allclose(middle_given_all_others(model, image), all_others, atol=1e-5)
    corner = conditional(joint, images[1], RASTER != 3, 3)
    assert torch.allclose(pixel_given_all_others(model, images[1:2], 0, 3)[0], corner, atol=1e-5)


def joint_marginal(joint):
    nothing = torch.zeros(16, dtype=torch.bool)
    return conditional(joint, torch.zeros(SHAPE, dtype=torch.long), nothing, MIDDLE)


def test_middle_marginal_estimate_is_within_its_standard_errors(model, joint):
    estimate = middle_pixel_marginal(model, 20_000, generator=seeded(1))
    assert estimate.probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (estimate.standard_error > 0).all() and (estimate.standard_error < 0.002).all()
    assert close_within_errors(estimate, joint_marginal(joint)), estimate


def test_middle_given_below_right_estimate_is_within_its_standard_errors(model, joint, images):
    wrong_answers_rejected = 0
    for seed, image in enumerate(images):
        truth = conditional(joint, image, RASTER > MIDDLE, MIDDLE)
        generator = torch.Generator().manual_seed(seed)
        estimate = middle_given_below_right(model, image, 10_000, generator=generator)
        assert estimate.probs.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert (estimate.standard_error < 0.01).all()
        assert 100 < estimate.effective_sample_size < 10_000
        assert close_within_errors(estimate, truth), (seed, estimate, truth)
        for wrong in (conditional(joint, image, RASTER < MIDDLE, MIDDLE), joint_marginal(joint)):
            wrong_answers_rejected += not close_within_errors(
                Estimate(wrong, estimate.standard_error), truth
            )
    assert wrong_answers_rejected >= 3, "the test has too little power"


def test_bottom_given_top_samples_follow_the_conditional(model, joint, images):
    n = 20_000
    unconditional = model.sample(n, generator=seeded(99))
    for seed, image in enumerate(images):
        truth = half_distribution(joint, image, TOP)
        generator = torch.Generator().manual_seed(seed)
        samples = sample_bottom_given_top(model, image, n, generator=generator)
        assert torch.equal(samples[:, :, :2], image[:, :2].expand(n, 1, 2, 4))
        assert frequencies_match(half_codes(samples, ~TOP), truth)
        wrong = half_codes(unconditional, ~TOP)
        assert not frequencies_match(wrong, truth), "the test has no power"


@pytest.mark.parametrize("init", ["model", "random"])
@pytest.mark.parametrize("method", ["metropolis", "gibbs"])
def test_top_given_bottom_chains_follow_the_conditional(model, joint, images, init, method):
    n = 4000
    image = images[0]
    truth = half_distribution(joint, image, ~TOP)
    samples = sample_top_given_bottom(
        model, image, n, 10, init=init, method=method, generator=seeded(0)
    )
    assert torch.equal(samples[:, :, 2:], image[:, 2:].expand(n, 1, 2, 4))
    assert frequencies_match(half_codes(samples, TOP), truth)
    start = sample_top_given_bottom(model, image, n, 0, init=init, generator=seeded(0))
    assert not frequencies_match(half_codes(start, TOP), truth), "the test has no power"


def test_partial_sampler_fills_only_the_requested_pixels_from_the_model(model, joint):
    start = torch.ones(20_000, *SHAPE, dtype=torch.long)
    samples = sample_in_raster_order(model, start, 0, 5, generator=seeded(0))
    assert (samples.flatten(1)[:, 5:] == 1).all()
    pixels, probs = joint
    codes = (pixels[:, :5] << torch.arange(4, -1, -1)).sum(dim=1)
    truth = torch.zeros(32, dtype=torch.float64).index_add_(0, codes, probs)
    drawn = (samples.flatten(1)[:, :5] << torch.arange(4, -1, -1)).sum(dim=1)
    frequencies = torch.bincount(drawn, minlength=32).double() / len(drawn)
    assert ((frequencies - truth).abs() <= 5 * (truth / len(drawn)).sqrt() + 1e-4).all()


def test_queries_leave_the_training_flag_and_are_reproducible(model, images):
    model.train()
    try:
        first = middle_given_below_right(model, images[0], 50, generator=seeded(3))
        again = middle_given_below_right(model, images[0], 50, generator=seeded(3))
        assert model.training and torch.equal(first.probs, again.probs)
        tops = sample_top_given_bottom(model, images[0], 5, 2, generator=seeded(3))
        again = sample_top_given_bottom(model, images[0], 5, 2, generator=seeded(3))
        assert model.training and torch.equal(tops, again)
    finally:
        model.eval()


def test_queries_need_one_channel():
    colour = tiny_pixelcnn((3, 4, 4))
    image = torch.zeros(3, 4, 4, dtype=torch.long)
    for query in (
        lambda: first_pixel_marginal(colour),
        lambda: middle_pixel_marginal(colour, 4),
        lambda: middle_given_above_left(colour, image),
        lambda: middle_given_below_right(colour, image, 4),
        lambda: middle_given_all_others(colour, image),
        lambda: sample_bottom_given_top(colour, image, 2),
        lambda: sample_top_given_bottom(colour, image, 2, 1),
    ):
        with pytest.raises(ValueError, match="one channel"):
            query()


def test_a_conditioning_image_of_the_wrong_shape_is_named(model):
    with pytest.raises(ValueError, match=r"shape \[1, 4, 4\]"):
        middle_given_above_left(model, torch.zeros(4, 4, dtype=torch.long))


def fit_with_panel(tmp_path, panel, **trainer_args):
    images = torch.randint(0, 2, (16, *SHAPE), generator=seeded(0))
    data = TensorDataset(images, torch.zeros(16, dtype=torch.long))
    datamodule = L.LightningDataModule.from_datasets(data, data, test_dataset=data, batch_size=8)
    logger = TensorBoardLogger(tmp_path, name="run")
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        callbacks=[panel],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **trainer_args,
    )
    trainer.fit(tiny_pixelcnn(), datamodule=datamodule)
    return trainer


def test_query_panel_writes_its_figure_at_the_end_of_fit(tmp_path):
    panel = QueryPanel(num_images=2, num_samples=8, num_completions=2, num_sweeps=1)
    trainer = fit_with_panel(tmp_path, panel)
    assert (tmp_path / "run" / "version_0" / "queries.png").is_file()
    assert trainer.log_dir == str(tmp_path / "run" / "version_0")


def test_query_panel_skips_fast_dev_run_and_refuses_colour_models(tmp_path):
    fit_with_panel(tmp_path, QueryPanel(num_samples=4), fast_dev_run=True)
    assert not list(tmp_path.rglob("queries.png"))
    trainer = L.Trainer(logger=False, fast_dev_run=True, callbacks=[QueryPanel()])
    colour = tiny_pixelcnn((3, 4, 4))
    loader = torch.utils.data.DataLoader(torch.zeros(4, 3, 4, 4, dtype=torch.long), batch_size=2)
    with pytest.raises(ValueError, match="one channel"):
        trainer.fit(colour, loader)


def test_importance_weights_give_shares_and_effective_sample_size_by_hand():
    values = torch.tensor([0, 1, 1])
    weights = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    estimate = _self_normalised(weights.log() - 7.0, F.one_hot(values, 2).double())
    assert torch.allclose(estimate.probs, torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert estimate.effective_sample_size == pytest.approx(16 / 6)
    residuals = weights * (torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) - 0.25)
    expected = residuals.std() / (math.sqrt(3) * weights.mean())
    assert estimate.standard_error[0].item() == pytest.approx(expected.item())


class WithoutComplete(torch.nn.Module):
    """The tiny model through forward, log_prob and sample only, as any causal image
    model offers them: the queries then draw pixel by pixel with forward passes."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.image_shape = model.image_shape
        self.num_levels = model.num_levels

    def forward(self, x):
        return self.model(x)

    def log_prob(self, x):
        return self.model.log_prob(x)


def test_cached_completion_and_forward_passes_give_the_same_answers(model, images):
    plain = WithoutComplete(model)
    for query in (
        lambda m: middle_pixel_marginal(m, 40, generator=seeded(4)),
        lambda m: middle_given_below_right(m, images[1], 40, generator=seeded(4)),
    ):
        cached, naive = query(model), query(plain)
        assert torch.allclose(cached.probs, naive.probs, atol=1e-6)
        assert torch.allclose(cached.standard_error, naive.standard_error, atol=1e-6)
    for query in (
        lambda m: sample_bottom_given_top(m, images[2], 30, generator=seeded(4)),
        lambda m: sample_top_given_bottom(m, images[2], 30, 2, generator=seeded(4)),
    ):
        assert torch.equal(query(model), query(plain))


def test_standard_errors_shrink_like_one_over_root_n(model, images):
    small = middle_given_below_right(model, images[0], 200, generator=seeded(5))
    large = middle_given_below_right(model, images[0], 3200, generator=seeded(5))
    ratio = (small.standard_error / large.standard_error).mean().item()
    assert ratio == pytest.approx(math.sqrt(16), rel=0.3)


def test_panel_conditions_on_test_images_or_else_validation_images():
    test = TensorDataset(torch.zeros(5, *SHAPE, dtype=torch.long), torch.zeros(5))
    val = TensorDataset(torch.ones(5, *SHAPE, dtype=torch.long), torch.zeros(5))
    both = L.LightningDataModule.from_datasets(val, val, test_dataset=test, batch_size=2)
    assert torch.equal(conditioning_images(both, 3), torch.zeros(3, *SHAPE, dtype=torch.long))
    no_test = L.LightningDataModule.from_datasets(val, val, batch_size=2)
    assert torch.equal(conditioning_images(no_test, 3), torch.ones(3, *SHAPE, dtype=torch.long))
    assert conditioning_images(None, 3) is None
