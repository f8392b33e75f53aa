"""Pictures and probes of a 2D diffusion model, for notebooks and callbacks.

Each ``plot_*`` function returns a matplotlib figure. They use the model only through its
public API: ``sample``, ``sample_from_noise``, ``initial_noise``, ``log_prob``,
``schedule`` and ``num_classes`` (``genlab.lightning_modules.Diffusion``).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor, nn

from genlab.nn.diffusion import Schedule, forward_trajectory
from genlab.nn.modes import evaluating

CLASS_COLOURS = plt.get_cmap("tab10")


def scatter(ax, points: Tensor, colour="tab:blue", size: float = 2.0, **kw) -> None:
    """Points ``[N, 2]`` as small dots."""
    points = points.detach().cpu()
    ax.scatter(points[:, 0], points[:, 1], s=size, c=colour, linewidths=0, **kw)


def draw_path(ax, path: Tensor, cmap: str = "viridis", colour=None, width: float = 1.2):
    """A polyline ``[K, 2]`` coloured from its first to its last point (t from 1 to 0 for
    reverse paths), or in one ``colour``; returns the line collection for a colour bar."""
    path = path.detach().cpu()
    segments = torch.stack([path[:-1], path[1:]], dim=1).numpy()
    if colour is not None:
        lines = LineCollection(segments, colors=[colour], linewidths=width)
    else:
        lines = LineCollection(segments, cmap=cmap, linewidths=width)
        lines.set_array(torch.linspace(1, 0, len(segments)).numpy())
    ax.add_collection(lines)
    ax.autoscale()
    return lines


def square_axes(ax, title: str) -> None:
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def plot_forward_trajectory(
    schedule: Schedule, point: tuple[float, float], steps: int = 500, seed: int = 0
) -> Figure:
    """One point's path through the forward process (a Markov chain with the stated
    marginals, see ``forward_trajectory``), coloured by t."""
    x0 = torch.tensor([point], dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    path = forward_trajectory(schedule, x0, steps, generator)[:, 0]
    figure, ax = plt.subplots(figsize=(5, 4.5))
    segments = torch.stack([path[:-1], path[1:]], dim=1).numpy()
    lines = LineCollection(segments, cmap="plasma", linewidths=1.0)
    lines.set_array(torch.linspace(0, 1, steps).numpy())
    ax.add_collection(lines)
    ax.autoscale()
    ax.plot(*point, "k*", ms=10, label="x_0")
    figure.colorbar(lines, ax=ax, label="t", shrink=0.8)
    ax.legend(fontsize=8)
    square_axes(ax, f"forward process of one point\n{schedule}")
    return figure


def plot_schedules(schedules: dict[str, Schedule], num_times: int = 200) -> Figure:
    """``sigma(t)`` (solid) and ``alpha(t)`` (dashed) of each schedule, and
    ``sigma / alpha`` on a log scale, the noise-to-signal ratio samplers care about."""
    t = torch.linspace(0, 1, num_times)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for index, (name, schedule) in enumerate(schedules.items()):
        colour = CLASS_COLOURS(index)
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        left.plot(t, sigma, color=colour, label=f"{name}: sigma")
        left.plot(t, alpha, "--", color=colour, label=f"{name}: alpha")
        right.semilogy(t, sigma / alpha, color=colour, label=name)
    left.set_xlabel("t")
    left.legend(fontsize=8)
    left.set_title("sigma(t) and alpha(t)")
    right.set_xlabel("t")
    right.set_title("sigma(t) / alpha(t)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return figure


@torch.no_grad()
def plot_sample_seeds(
    model: nn.Module, data: Tensor, num_samples: int = 1000, seeds: range = range(9), **kw
) -> Figure:
    """A 3x3 grid: ``num_samples`` samples for each of 9 seeds over the data (grey);
    ``kw`` goes to ``model.sample`` (steps, sampler, ...)."""
    figure, axes = plt.subplots(3, 3, figsize=(9, 9), sharex=True, sharey=True, layout="compressed")
    with evaluating(model):
        for ax, seed in zip(axes.flat, seeds, strict=True):
            generator = torch.Generator().manual_seed(seed)
            scatter(ax, data, "lightgrey")
            scatter(ax, model.sample(num_samples, generator=generator, **kw), "tab:blue")
            square_axes(ax, f"seed {seed}")
    return figure


@torch.no_grad()
def plot_samples_by_steps(
    model: nn.Module,
    data: Tensor,
    steps: tuple[int, ...] = (1, 2, 5, 10, 20, 50),
    samplers: tuple[str, ...] = ("ddim", "ddpm"),
    num_samples: int = 1000,
    seed: int = 0,
) -> Figure:
    """Samples from the same noise for several step counts T (columns) and samplers (rows)."""
    figure, axes = plt.subplots(
        len(samplers), len(steps), figsize=(2.6 * len(steps), 2.8 * len(samplers)), squeeze=False
    )
    with evaluating(model):
        for row, sampler in zip(axes, samplers, strict=True):
            for ax, count in zip(row, steps, strict=True):
                generator = torch.Generator().manual_seed(seed)
                points = model.sample(
                    num_samples, generator=generator, steps=count, sampler=sampler
                )
                scatter(ax, data, "lightgrey")
                scatter(ax, points, "tab:blue")
                square_axes(ax, f"{sampler}, T = {count}")
    return figure


@torch.no_grad()
def plot_reverse_trajectories(
    model: nn.Module,
    data: Tensor,
    num_paths: int = 4,
    steps: int = 50,
    sampler: str = "ddim",
    seed: int = 0,
) -> Figure:
    """``num_paths`` reverse paths from t = 1 (circle) to t = 0 (star) over the data."""
    generator = torch.Generator().manual_seed(seed)
    with evaluating(model):
        initial = model.initial_noise(num_paths, generator)
        injected = torch.randn(steps, num_paths, initial.shape[1], generator=generator)
        injected = None if sampler == "ddim" else injected.to(initial)
        _, paths = model.sample_from_noise(
            initial, injected_noise=injected, steps=steps, sampler=sampler, return_trajectory=True
        )
    figure, ax = plt.subplots(figsize=(5.5, 5))
    scatter(ax, data, "lightgrey")
    for k in range(num_paths):
        lines = draw_path(ax, paths[:, k])
        ax.plot(*paths[0, k].cpu(), "o", color="k", ms=4)
        ax.plot(*paths[-1, k].cpu(), "*", color="crimson", ms=10)
    figure.colorbar(lines, ax=ax, label="t", shrink=0.8)
    square_axes(ax, f"{num_paths} reverse trajectories ({sampler}, T = {steps})")
    return figure


@torch.no_grad()
def plot_classes(
    model: nn.Module,
    data: Tensor,
    labels: Tensor,
    samples_per_class: int = 300,
    steps: int = 50,
    guidance: float | None = None,
    seed: int = 0,
) -> Figure:
    """A conditional model in three panels: the data coloured by class, one DDIM
    trajectory per class, and ``samples_per_class`` samples of each class."""
    classes = range(model.num_classes)
    figure, axes = plt.subplots(1, 3, figsize=(15, 5), sharex=True, sharey=True)
    colours = [CLASS_COLOURS(c) for c in labels.clamp_min(0).tolist()]
    scatter(axes[0], data, colours)
    square_axes(axes[0], "data by class")
    generator = torch.Generator().manual_seed(seed)
    with evaluating(model):
        initial = model.initial_noise(len(classes), generator)
        cond = torch.tensor(list(classes))
        _, paths = model.sample_from_noise(
            initial, cond, steps=steps, guidance=guidance, return_trajectory=True
        )
        for c in classes:
            points = model.sample(samples_per_class, c, generator=generator, guidance=guidance)
            scatter(axes[2], points, [CLASS_COLOURS(c)], label=f"class {c}")
    scatter(axes[1], data, "lightgrey")
    for c in classes:
        draw_path(axes[1], paths[:, c], colour=CLASS_COLOURS(c), width=1.5)
        axes[1].plot(*paths[-1, c].cpu(), "*", color=CLASS_COLOURS(c), ms=12, mec="k")
    weight = model.hparams.guidance if guidance is None else guidance
    square_axes(axes[1], "one trajectory per class (t = 1 to 0)")
    square_axes(axes[2], f"{samples_per_class} samples per class, guidance w = {weight}")
    axes[2].legend(fontsize=8, markerscale=4)
    return figure


def plot_log_probs(
    model: nn.Module,
    data: Tensor,
    points: list[tuple[float, float]],
    classes: tuple[int, ...] = (0, 1),
) -> Figure:
    """The data with chosen points marked and their exact ODE log-density ``log p(x)`` in
    nats (``log p(x | c)`` for each class in ``classes`` when the model is conditional)."""
    queries = torch.tensor(points, dtype=torch.float32, device=model.device)
    with evaluating(model):
        if model.num_classes:
            values = {c: model.log_prob(queries, torch.full((len(points),), c)) for c in classes}
        else:
            values = {None: model.log_prob(queries)}
    figure, ax = plt.subplots(figsize=(6, 5.5))
    scatter(ax, data, "lightgrey")
    for k, point in enumerate(points):
        text = "\n".join(
            f"log p(x{'' if c is None else f' | c={c}'}) = {v[k].item():.2f}"
            for c, v in values.items()
        )
        ax.plot(*point, "rx", ms=8, mew=2)
        ax.annotate(text, point, xytext=(5, 5), textcoords="offset points", fontsize=7)
    ax.update_datalim(queries.cpu().numpy())
    ax.autoscale()
    square_axes(ax, "exact log-density (nats) of chosen points")
    return figure


@dataclass
class SteeringResult:
    """A steered sample: its trajectory ``[steps + 1, 2]`` from t = 1, the noise that
    produced it, and how far the end point is from the target."""

    target: Tensor
    trajectory: Tensor
    initial_noise: Tensor
    injected_noise: Tensor | None
    distance: float


def steer(
    model: nn.Module,
    target: tuple[float, float],
    *,
    noise: str = "initial",
    steps: int = 20,
    iterations: int = 300,
    learning_rate: float = 0.5,
    seed: int = 0,
) -> SteeringResult:
    """Choose the noise so that a sample lands on ``target``, by gradient descent on the
    squared distance through the sampler. ``noise="initial"``: the initial noise of a
    DDIM run (deterministic, so the noise alone decides the end point);
    ``noise="injected"``: the noise injected at every DDPM step, the initial noise fixed.
    """
    if noise not in ("initial", "injected"):
        raise ValueError(f"noise must be 'initial' or 'injected', got {noise!r}")
    generator = torch.Generator().manual_seed(seed)
    goal = torch.tensor([target], dtype=torch.float32, device=model.device)
    initial = model.initial_noise(1, generator)
    injected = torch.randn(steps, 1, initial.shape[1], generator=generator).to(initial)
    sampler = "ddim" if noise == "initial" else "ddpm"
    chosen = (initial if noise == "initial" else injected).requires_grad_(True)
    optimizer = torch.optim.Adam([chosen], lr=learning_rate)

    def run(**kw):
        extra = {} if noise == "initial" else {"injected_noise": injected}
        return model.sample_from_noise(initial, steps=steps, sampler=sampler, **extra, **kw)

    with evaluating(model):
        for _ in range(iterations):
            miss = (run() - goal).pow(2).sum()
            chosen.grad = torch.autograd.grad(miss, chosen)[0]
            optimizer.step()
        with torch.no_grad():
            end, path = run(return_trajectory=True)
    return SteeringResult(
        target=goal[0].cpu(),
        trajectory=path[:, 0].cpu(),
        initial_noise=initial.detach().cpu(),
        injected_noise=None if noise == "initial" else injected.detach().cpu(),
        distance=float((end - goal).norm()),
    )


def plot_steering(data: Tensor, results: dict[str, SteeringResult]) -> Figure:
    """Steered trajectories (one per way of choosing the noise) over the data, with the
    noise norms against their typical values (sqrt of the number of noise scalars)."""
    figure, ax = plt.subplots(figsize=(6, 6))
    scatter(ax, data, "lightgrey")
    for index, (name, result) in enumerate(results.items()):
        colour = CLASS_COLOURS(index)
        chosen = result.initial_noise if result.injected_noise is None else result.injected_noise
        label = (
            f"{name}: |noise| = {chosen.norm():.1f} (typical {chosen.numel() ** 0.5:.1f}), "
            f"miss {result.distance:.3f}"
        )
        draw_path(ax, result.trajectory, colour=colour, width=1.5)
        ax.plot(*result.trajectory[0], "o", color=colour, label=label)
    target = next(iter(results.values())).target
    ax.plot(*target, "k*", ms=14, label=f"target ({target[0]:.1f}, {target[1]:.1f})")
    ax.legend(fontsize=7, loc="lower right")
    square_axes(ax, "steering a sample by choosing its noise")
    return figure
