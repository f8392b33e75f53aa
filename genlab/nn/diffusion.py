"""Diffusion on vectors, written out by hand: noise schedules, the forward process, a noise
predicting MLP, DDIM and DDPM-style samplers, and two likelihoods.

The forward process is ``x_t = alpha(t) x_0 + sigma(t) eps`` with ``eps ~ N(0, I)`` and
``t`` in [0, 1]. Variance-exploding schedules keep ``alpha = 1`` (the default,
``sigma(t) = exp(5 (t - 1))``); variance-preserving ones have
``alpha^2 + sigma^2 = 1``. Everything below is written for a general ``(alpha, sigma)``.

A noise predictor is any callable ``eps_fn(x_t, t) -> eps_hat`` with ``t`` of shape
``[B]``; conditioning and guidance are closed over by whoever builds it.

References: DDPM (Ho, Jain & Abbeel 2020); DDIM (Song, Meng & Ermon 2021); the
probability-flow ODE (Song et al. 2021, "Score-Based Generative Modeling through SDEs");
the variational bound in SNR form (Kingma et al. 2021, "Variational Diffusion Models");
classifier-free guidance (Ho & Salimans 2022).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

NoisePredictor = Callable[[Tensor, Tensor], Tensor]


class Schedule:
    """``alpha(t)`` and ``sigma(t)`` of the forward process for ``t`` in [0, 1], and their
    time derivatives (by autograd unless a subclass knows them in closed form)."""

    def alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def rates(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(d alpha / dt, d sigma / dt)`` at ``t``."""
        with torch.enable_grad():
            t = t.detach().clone().requires_grad_(True)
            # adding 0 * t keeps a constant alpha (or sigma) attached to the graph
            alpha, sigma = self.alpha(t) + 0 * t, self.sigma(t) + 0 * t
            d_alpha = torch.autograd.grad(alpha.sum(), t, retain_graph=True)[0]
            d_sigma = torch.autograd.grad(sigma.sum(), t)[0]
        return d_alpha.detach(), d_sigma.detach()

    def log_snr(self, t: Tensor) -> Tensor:
        """``log(alpha^2 / sigma^2)``, the signal-to-noise ratio on a log scale."""
        return 2 * (self.alpha(t).log() - self.sigma(t).log())


def exponential_sigma(t: Tensor, exponent: float = 5.0) -> Tensor:
    """``exp(exponent (t - 1))``: noise from ``exp(-exponent)`` at t = 0 to 1 at t = 1."""
    return torch.exp(exponent * (t - 1))


class ExponentialSchedule(Schedule):
    """Variance exploding: ``alpha = 1``, ``sigma(t) = exp(exponent (t - 1))``. Note that
    ``sigma(1) = 1``, so ``x_1`` still carries the data (it is the data convolved with
    ``N(0, I)``), and ``sigma(0) = exp(-exponent) > 0``."""

    def __init__(self, exponent: float = 5.0) -> None:
        if exponent <= 0:
            raise ValueError(f"exponent must be > 0, got {exponent}")
        self.exponent = exponent

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return exponential_sigma(t, self.exponent)

    def rates(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros_like(t), self.exponent * self.sigma(t)

    def __repr__(self) -> str:
        return f"ExponentialSchedule(exponent={self.exponent})"


class CosineSchedule(Schedule):
    """Variance preserving: ``alpha = cos(theta)``, ``sigma = sin(theta)`` with the angle
    ``theta`` linear in t, from ``atan(min_ratio)`` to ``atan(max_ratio)``, where the ratios
    are ``sigma / alpha`` at t = 0 and t = 1 (the cosine shape of Nichol & Dhariwal 2021,
    with its ends fixed by noise-to-signal ratios instead of an offset and a clip)."""

    def __init__(self, min_ratio: float = math.exp(-5.0), max_ratio: float = 100.0) -> None:
        if not 0 < min_ratio < max_ratio:
            raise ValueError(f"need 0 < min_ratio < max_ratio, got {min_ratio} and {max_ratio}")
        self.min_ratio, self.max_ratio = min_ratio, max_ratio
        self.start, self.end = math.atan(min_ratio), math.atan(max_ratio)

    def angle(self, t: Tensor) -> Tensor:
        return self.start + t * (self.end - self.start)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(self.angle(t))

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sin(self.angle(t))

    def rates(self, t: Tensor) -> tuple[Tensor, Tensor]:
        speed = self.end - self.start
        return -speed * self.sigma(t), speed * self.alpha(t)

    def __repr__(self) -> str:
        return f"CosineSchedule(min_ratio={self.min_ratio:.4g}, max_ratio={self.max_ratio:.4g})"


class FunctionSchedule(Schedule):
    """A schedule from user functions of a tensor ``t``: ``sigma`` and optionally ``alpha``
    (1 when absent). They must be differentiable by autograd, which gives the rates."""

    def __init__(self, sigma: Callable[[Tensor], Tensor], alpha: Callable | None = None) -> None:
        self.sigma_fn, self.alpha_fn = sigma, alpha

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t) if self.alpha_fn is None else self.alpha_fn(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_fn(t)

    def __repr__(self) -> str:
        alpha = "1" if self.alpha_fn is None else self.alpha_fn.__name__
        return f"FunctionSchedule(sigma={self.sigma_fn.__name__}, alpha={alpha})"


SCHEDULES: dict[str, type[Schedule]] = {
    "exponential": ExponentialSchedule,
    "cosine": CosineSchedule,
}


def import_object(path: str):
    """The object a dotted path ``package.module.name`` names."""
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import {path!r}: {error}") from error


def make_schedule(name: str, options: dict | None = None) -> Schedule:
    """A schedule from a name and keyword options, as configs give it: a built-in name
    (``"exponential"``, ``"cosine"``), or a dotted path to a ``Schedule`` subclass (built
    with the options) or to a function ``t -> sigma(t)`` (options may name an ``alpha``
    function by its dotted path too)."""
    options = dict(options or {})
    if name in SCHEDULES:
        return SCHEDULES[name](**options)
    if "." not in name:
        raise ValueError(
            f"unknown schedule {name!r}: expected one of {sorted(SCHEDULES)} or a dotted path"
        )
    target = import_object(name)
    if isinstance(target, type) and issubclass(target, Schedule):
        return target(**options)
    if not callable(target):
        raise ValueError(f"schedule {name!r} is neither a Schedule class nor a function of t")
    alpha = options.pop("alpha", None)
    if options:
        raise ValueError(f"a function schedule takes only the option 'alpha', got {options}")
    return FunctionSchedule(target, None if alpha is None else import_object(alpha))


def diffuse(schedule: Schedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """The forward process ``alpha(t) x0 + sigma(t) noise``, one ``t`` per row of ``x0``."""
    return schedule.alpha(t)[:, None] * x0 + schedule.sigma(t)[:, None] * noise


def forward_trajectory(
    schedule: Schedule, x0: Tensor, steps: int, generator: torch.Generator | None = None
) -> Tensor:
    """One path of the forward process as a Markov chain on ``steps + 1`` equal times from
    0 to 1: ``x_u = (alpha_u / alpha_s) x_s + sqrt(sigma_u^2 - (alpha_u / alpha_s)^2
    sigma_s^2) z``, which keeps the marginal ``alpha(t) x0 + sigma(t) eps`` at every time.
    Returns ``[steps + 1, B, D]``, starting at ``x_0 = alpha(0) x0 + sigma(0) eps``."""
    times = time_grid(steps, x0.device).flip(0)
    alphas, sigmas = schedule.alpha(times), schedule.sigma(times)
    noise = torch.randn((steps + 1, *x0.shape), generator=generator).to(x0)
    path = [alphas[0] * x0 + sigmas[0] * noise[0]]
    for k in range(1, steps + 1):
        ratio = alphas[k] / alphas[k - 1]
        spread = (sigmas[k] ** 2 - ratio**2 * sigmas[k - 1] ** 2).clamp_min(0).sqrt()
        path.append(ratio * path[-1] + spread * noise[k])
    return torch.stack(path)


class NoiseMLP(nn.Module):
    """``eps_hat = D(x_t, t[, c])``: an MLP on the point, Fourier features of t and, when
    ``num_classes > 0``, a learned class embedding. Index ``num_classes`` is the null
    class of classifier-free guidance, used whenever ``cond`` is None."""

    def __init__(
        self,
        dim: int = 2,
        hidden_units: int = 128,
        num_hidden_layers: int = 3,
        time_features: int = 16,
        num_classes: int = 0,
        class_features: int = 16,
    ) -> None:
        super().__init__()
        if dim < 1 or hidden_units < 1 or num_hidden_layers < 1 or time_features < 2:
            raise ValueError(
                "need dim, hidden_units, num_hidden_layers >= 1 and time_features >= 2, got "
                f"{dim}, {hidden_units}, {num_hidden_layers} and {time_features}"
            )
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.register_buffer(
            "frequencies", torch.logspace(0, 2, time_features // 2) * math.pi, persistent=False
        )
        self.embedding = nn.Embedding(num_classes + 1, class_features) if num_classes else None
        width = dim + 2 * (time_features // 2) + (class_features if num_classes else 0)
        layers: list[nn.Module] = []
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_units), nn.SiLU()]
            width = hidden_units
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        angles = t.reshape(-1, 1).expand(len(x), 1) * self.frequencies
        inputs = [x, angles.sin(), angles.cos()]
        if self.embedding is not None:
            if cond is None:
                cond = torch.full((len(x),), self.num_classes, device=x.device)
            inputs.append(self.embedding(cond))
        elif cond is not None:
            raise ValueError("this denoiser has no classes (num_classes=0) but got cond")
        return self.net(torch.cat(inputs, dim=1))


class GaussianDenoiser(nn.Module):
    """The optimal noise predictor for data ``N(mean, covariance)``, in closed form: with
    ``x_t ~ N(alpha m, alpha^2 S + sigma^2 I)``,
    ``E[eps | x_t] = sigma (alpha^2 S + sigma^2 I)^{-1} (x_t - alpha m)``. Exact, so the
    samplers and likelihoods can be checked against a known answer."""

    def __init__(self, mean: Tensor, covariance: Tensor, schedule: Schedule) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("covariance", torch.as_tensor(covariance, dtype=torch.float64))
        self.schedule = schedule

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        t = t.double().reshape(-1).expand(len(x))
        alpha, sigma = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        eye = torch.eye(len(self.mean), dtype=torch.float64, device=x.device)
        marginal = alpha[..., None] ** 2 * self.covariance + sigma[..., None] ** 2 * eye
        centred = (x.double() - alpha * self.mean)[..., None]
        return (sigma * torch.linalg.solve(marginal, centred)[..., 0]).to(x.dtype)


def gaussian_log_prob(x: Tensor, mean: Tensor, covariance: Tensor) -> Tensor:
    """``log N(x; mean, covariance)`` of each row of ``x``."""
    return torch.distributions.MultivariateNormal(mean, covariance).log_prob(x)


def terminal_gaussian(schedule: Schedule, mean: Tensor, covariance: Tensor) -> tuple:
    """Mean and covariance of ``x_1`` when the data has the given mean ``[..., D]`` and
    covariance ``[..., D, D]``:
    ``(alpha(1) m, alpha(1)^2 S + sigma(1)^2 I)``. For Gaussian data ``x_1`` has exactly
    this law; for other data it is the Gaussian with the moments of ``p_1`` (samplers start
    from it and the ODE likelihood scores ``x_1`` under it)."""
    one = torch.ones((), dtype=covariance.dtype, device=covariance.device)
    alpha, sigma = schedule.alpha(one), schedule.sigma(one)
    eye = torch.eye(mean.shape[-1], dtype=covariance.dtype, device=covariance.device)
    return alpha * mean, alpha**2 * covariance + sigma**2 * eye


def time_grid(steps: int, device: torch.device | str | None = None) -> Tensor:
    """``steps + 1`` equally spaced times from 1 down to 0."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


def reverse_step(
    eps_fn: NoisePredictor,
    schedule: Schedule,
    x: Tensor,
    t: Tensor,
    s: Tensor,
    noise_level: float = 0.0,
    noise: Tensor | None = None,
) -> Tensor:
    """One step from time t to the earlier time s (Song, Meng & Ermon 2021, eq. 12, in
    ``(alpha, sigma)`` form): predict ``x0 = (x - sigma_t eps_hat) / alpha_t``, then
    ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps_hat + c noise``. ``c`` is
    ``noise_level`` times the standard deviation of ``q(x_s | x_t, x0)``: 0 is DDIM (the
    probability-flow ODE discretised), 1 is DDPM's ancestral step."""
    alpha_t, sigma_t = schedule.alpha(t), schedule.sigma(t)
    alpha_s, sigma_s = schedule.alpha(s), schedule.sigma(s)
    eps = eps_fn(x, t.expand(len(x)))
    x0 = (x - sigma_t * eps) / alpha_t
    if noise_level == 0:
        return alpha_s * x0 + sigma_s * eps
    bridge = (sigma_t**2 - (alpha_t / alpha_s) ** 2 * sigma_s**2).clamp_min(0)
    c = noise_level * sigma_s * bridge.sqrt() / sigma_t
    return alpha_s * x0 + (sigma_s**2 - c**2).clamp_min(0).sqrt() * eps + c * noise


def sample(
    eps_fn: NoisePredictor,
    schedule: Schedule,
    initial: Tensor,
    steps: int,
    *,
    noise_level: float = 0.0,
    injected_noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``steps`` reverse steps from ``initial`` (the point at t = 1) to t = 0.

    ``noise_level`` 0 is DDIM: the output is a deterministic function of ``initial``.
    Above 0 each step adds fresh noise: row k of ``injected_noise`` ``[steps, B, D]``
    (drawn from ``generator`` when not given), so a chosen noise steers the sample.
    Differentiable in ``initial`` and ``injected_noise``. With ``return_trajectory`` also
    returns every state, ``[steps + 1, B, D]``, from t = 1 to t = 0.
    """
    if not 0 <= noise_level <= 1:
        raise ValueError(f"noise_level must be in [0, 1], got {noise_level}")
    times = time_grid(steps, initial.device)
    if injected_noise is not None and noise_level == 0:
        raise ValueError("injected_noise is only used with noise_level > 0")
    if noise_level > 0 and injected_noise is None:
        injected_noise = torch.randn(
            (steps, *initial.shape), generator=generator, device=initial.device
        )
    if injected_noise is not None and injected_noise.shape != (steps, *initial.shape):
        raise ValueError(
            f"injected_noise must have shape {[steps, *initial.shape]}, "
            f"got {list(injected_noise.shape)}"
        )
    x, path = initial, [initial]
    for k in range(steps):
        noise = None if injected_noise is None else injected_noise[k]
        x = reverse_step(eps_fn, schedule, x, times[k], times[k + 1], noise_level, noise)
        path.append(x)
    return (x, torch.stack(path)) if return_trajectory else x


def ode_drift(eps_fn: NoisePredictor, schedule: Schedule, x: Tensor, t: Tensor) -> Tensor:
    """The probability-flow ODE ``dx/dt = (alpha'/alpha) x + (sigma' - sigma alpha'/alpha)
    eps_hat``, which moves points so that their law stays ``p_t`` at every t."""
    times = t.expand(len(x))
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    d_alpha, d_sigma = schedule.rates(t)
    growth = d_alpha / alpha
    return growth * x + (d_sigma - sigma * growth) * eps_fn(x, times)


def drift_and_divergence(
    eps_fn: NoisePredictor, schedule: Schedule, x: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """The ODE drift and its exact divergence (the trace of its Jacobian, one backward
    pass per coordinate: cheap in 2D), both detached."""
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        drift = ode_drift(eps_fn, schedule, x, t.detach().clone())
        divergence = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for i in range(x.shape[1]):
            last = i == x.shape[1] - 1
            grad = torch.autograd.grad(drift[:, i].sum(), x, retain_graph=not last)[0]
            divergence = divergence + grad[:, i]
    return drift.detach(), divergence.detach()


def ode_log_prob(
    eps_fn: NoisePredictor,
    schedule: Schedule,
    x: Tensor,
    terminal_mean: Tensor,
    terminal_covariance: Tensor,
    steps: int = 100,
) -> Tensor:
    """``log p_0(x)`` of the probability-flow ODE's model, in nats per row.

    Integrates ``x`` from t = 0 to t = 1 with fixed-step RK4 while accumulating the exact
    divergence, and uses ``log p_0(x_0) = log p_1(x_1) + integral of div f dt`` (the
    instantaneous change of variables). ``p_1`` is taken to be
    ``N(terminal_mean, terminal_covariance)``: exact for Gaussian data, a moment-matched
    approximation otherwise. The integral is exact up to RK4's discretisation error.
    Not differentiable (evaluation only).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    times = torch.linspace(0.0, 1.0, steps + 1, device=x.device)
    x, total = x.detach(), torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        h = t_next - t
        k1, d1 = drift_and_divergence(eps_fn, schedule, x, t)
        k2, d2 = drift_and_divergence(eps_fn, schedule, x + h / 2 * k1, t + h / 2)
        k3, d3 = drift_and_divergence(eps_fn, schedule, x + h / 2 * k2, t + h / 2)
        k4, d4 = drift_and_divergence(eps_fn, schedule, x + h * k3, t_next)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        total = total + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    mean, covariance = terminal_mean.to(x.dtype), terminal_covariance.to(x.dtype)
    return gaussian_log_prob(x, mean, covariance) + total


def elbo(
    eps_fn: NoisePredictor,
    schedule: Schedule,
    x: Tensor,
    terminal_mean: Tensor,
    terminal_covariance: Tensor,
    steps: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A one-sample Monte Carlo estimate of the variational lower bound on ``log p(x)``
    of the discrete-time model on the grid ``0 = u_0 < ... < u_steps = 1``, in nats per row.

    The model: ``z_1 ~ N(terminal_mean, terminal_covariance)``; each reverse step is
    ``q(z_s | z_t, x0 = x0_hat)`` (the DDPM step); the decoder is
    ``N(x; x0_hat(z_0), (sigma_0 / alpha_0)^2 I)``. The bound is
    ``E log decoder - KL(q(z_1 | x) || p(z_1)) - sum of step KLs``, where a step from t to
    s costs ``0.5 (SNR(s) / SNR(t) - 1) ||eps - eps_hat||^2`` (Kingma et al. 2021). Its
    expectation is below ``log p(x)``; one draw is noisy, so average several.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    dim = x.shape[1]
    grid = torch.linspace(0.0, 1.0, steps + 1, device=x.device)
    alphas, sigmas = schedule.alpha(grid), schedule.sigma(grid)
    if not sigmas[0] > 0:
        raise ValueError(f"the ELBO needs sigma(0) > 0, got {float(sigmas[0])}")
    snr = (alphas / sigmas) ** 2
    total = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for k in range(steps + 1):
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        z = alphas[k] * x + sigmas[k] * eps
        error = (eps_fn(z, grid[k].expand(len(x))) - eps).pow(2).sum(dim=1)
        if k == 0:
            log_scale = torch.log(sigmas[0] / alphas[0])
            total = total - 0.5 * error - dim * (log_scale + 0.5 * math.log(2 * math.pi))
        else:
            total = total - 0.5 * (snr[k - 1] / snr[k] - 1) * error
    prior = torch.distributions.MultivariateNormal(
        alphas[-1] * x, sigmas[-1] ** 2 * torch.eye(dim, dtype=x.dtype, device=x.device)
    )
    terminal = torch.distributions.MultivariateNormal(
        terminal_mean.to(x.dtype), terminal_covariance.to(x.dtype)
    )
    return total - torch.distributions.kl_divergence(prior, terminal)
