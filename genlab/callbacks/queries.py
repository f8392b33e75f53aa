"""Probability queries about the middle pixel of a few test images, and completions of
their missing halves."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from genlab.analysis import (
    Estimate,
    first_pixel_marginal,
    middle_given_above_left,
    middle_given_all_others,
    middle_given_below_right,
    middle_pixel,
    middle_pixel_marginal,
    sample_bottom_given_top,
    sample_top_given_bottom,
)
from genlab.callbacks.io import images_to_grid, log_figure
from genlab.callbacks.periodic import EveryNEpochs
from genlab.lightning_modules.base import data_of


class QueryPanel(EveryNEpochs):
    """One row per conditioning image (the first ``num_images`` of the data module's test
    split, or of its validation split): the image with its middle pixel ``m`` outlined,
    bar plots over the K values of

    a. ``p(x_first)`` (exact), b. ``p(x_m)`` (Monte Carlo, error bars of one standard
    error), c. ``p(x_m | above and left)`` (exact), d. ``p(x_m | below and right)``
    (importance sampling, error bars), e. ``p(x_m | all other pixels)`` (exact),

    with the image's own value of the pixel asked about in orange, then
    ``num_completions`` samples of f. the bottom half given the top half (exact) and
    g. the top half given the bottom half (``num_sweeps`` Metropolis sweeps).
    See ``genlab.analysis.queries``.

    Draws at the end of ``fit`` into ``queries.png``, and after every
    ``every_n_epochs``-th validation into ``queries/epoch_NNN.png`` when that is positive;
    logs TensorBoard's ``queries``. ``num_samples`` sets the Monte Carlo size of b and d.

    Needs a single-channel image model with ``forward`` logits ``[B, C, K, H, W]``,
    ``log_prob``, ``image_shape`` and ``num_levels``.
    """

    def __init__(
        self,
        num_images: int = 3,
        num_samples: int = 128,
        num_completions: int = 4,
        num_sweeps: int = 5,
        every_n_epochs: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs, at_train_start=False)
        self.num_images = num_images
        self.num_samples = num_samples
        self.num_completions = num_completions
        self.num_sweeps = num_sweeps
        self.seed = seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        channels = pl_module.image_shape[0]
        if channels != 1:
            raise ValueError(
                f"QueryPanel: probability queries need one channel (C=1); "
                f"this model has C={channels}"
            )

    picture = "queries"

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str) -> None:
        images = conditioning_images(trainer.datamodule, self.num_images)
        if images is None:
            rank_zero_warn("QueryPanel: the data module has no test or validation images")
            return
        figure = query_figure(
            pl_module,
            images,
            self.num_samples,
            self.num_completions,
            self.num_sweeps,
            generator=torch.Generator().manual_seed(self.seed),
        )
        log_figure(trainer, "queries", figure, filename)


def query_figure(
    model: L.LightningModule,
    images: Tensor,
    num_samples: int,
    num_completions: int,
    num_sweeps: int,
    *,
    generator: torch.Generator | None = None,
) -> Figure:
    """``QueryPanel``'s picture for conditioning images ``[N, 1, H, W]``: one row each."""
    first = first_pixel_marginal(model)
    middle = middle_pixel_marginal(model, num_samples, generator=generator)
    figure, axes = plt.subplots(len(images), 8, figsize=(17, 2.3 * len(images)), squeeze=False)
    settings = (num_samples, num_completions, num_sweeps)
    for row_axes, image in zip(axes, images, strict=True):
        draw_row(row_axes, model, image, first, middle, settings, generator)
    figure.tight_layout()
    return figure


def draw_row(
    axes: list[Axes],
    model: L.LightningModule,
    image: Tensor,
    first: Tensor,
    middle: Estimate,
    settings: tuple[int, int, int],
    generator: torch.Generator | None,
) -> None:
    """One conditioning image: the image, the five bar plots, the two sample grids;
    ``settings`` are the Monte Carlo samples, completions and sweeps."""
    num_samples, num_completions, num_sweeps = settings
    row, col = middle_pixel(model)
    actual = int(image[0, row, col])
    below_right = middle_given_below_right(model, image, num_samples, generator=generator)
    draw_image(axes[0], image, model.num_levels, (row, col))
    effective = f"effective samples {below_right.effective_sample_size:.0f} of {num_samples}"
    bars = [
        ("a. p(x first)", first, None, int(image[0, 0, 0])),
        ("b. p(x mid)", middle.probs, middle.standard_error, actual),
        ("c. p(x mid | above, left)", middle_given_above_left(model, image), None, actual),
        (
            f"d. p(x mid | below, right)\n{effective}",
            below_right.probs,
            below_right.standard_error,
            actual,
        ),
        ("e. p(x mid | all others)", middle_given_all_others(model, image), None, actual),
    ]
    for ax, (title, probs, error, highlight) in zip(axes[1:6], bars, strict=True):
        draw_bars(ax, title, probs, error, highlight)
    bottoms = sample_bottom_given_top(model, image, num_completions, generator=generator)
    tops = sample_top_given_bottom(model, image, num_completions, num_sweeps, generator=generator)
    draw_samples(axes[6], "f. bottom | top", bottoms, model.num_levels)
    draw_samples(axes[7], f"g. top | bottom ({num_sweeps} sweeps)", tops, model.num_levels)


def conditioning_images(datamodule: L.LightningDataModule | None, count: int) -> Tensor | None:
    """The first ``count`` images ``[N, C, H, W]`` of the test loader, or of the
    validation loader when there is no test loader; None when neither has any."""
    if datamodule is None:
        return None
    for loader_of in (datamodule.test_dataloader, datamodule.val_dataloader):
        try:
            loader = loader_of()
        except (MisconfigurationException, NotImplementedError, RuntimeError):
            continue
        images = []
        for batch in loader:
            images.append(data_of(batch).cpu())
            if sum(len(chunk) for chunk in images) >= count:
                break
        if images:
            return torch.cat(images)[:count]
    return None


def draw_image(ax: Axes, image: Tensor, num_levels: int, middle: tuple[int, int]) -> None:
    """A single-channel image in grey levels with the middle pixel outlined."""
    ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=num_levels - 1)
    row, col = middle
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, color="orange", lw=1.5))
    ax.set_title("conditioning image", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_bars(
    ax: Axes, title: str, probs: Tensor, error: Tensor | None, highlight: int | None
) -> None:
    """Probabilities of the K values, one standard error as error bars, the value
    ``highlight`` in orange. With many values each bar is one value wide and outlined,
    so that a bar narrower than a screen pixel still shows."""
    values = range(len(probs))
    colours = ["tab:orange" if value == highlight else "tab:blue" for value in values]
    yerr = None if error is None else error.numpy()
    many = len(probs) > 16
    ax.bar(
        values,
        probs.numpy(),
        width=1.0 if many else 0.8,
        yerr=yerr,
        color=colours,
        edgecolor=colours,
        linewidth=0.8 if many else 0.0,
        capsize=0 if many else 2,
    )
    ax.set_ylim(0, 1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)


def draw_samples(ax: Axes, title: str, samples: Tensor, num_levels: int) -> None:
    """A square-ish grid of samples."""
    nrow = max(1, round(len(samples) ** 0.5))
    grid = images_to_grid(samples, num_levels, nrow)
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
