"""Diffusion on 2D points: a noise-predicting MLP trained on ``x_t = alpha(t) x_0 +
sigma(t) eps``, sampled by DDIM or DDPM-style steps, optionally class-conditional with
classifier-free guidance, and scored by the exact probability-flow ODE density.

What the model is: its density is ``p_0``, the law of the sampler's output at t = 0 (the
data smoothed by ``N(0, sigma(0)^2)`` when trained to optimality). ``log_prob`` computes
it exactly up to ODE discretisation, given the terminal approximation below; ``elbo``
is a Monte Carlo lower bound of a discrete-time model on a grid of ``elbo_steps``.

The terminal law: ``x_1`` is the data convolved with ``N(0, sigma(1)^2)`` (for the default
schedule ``sigma(1) = 1``, so ``x_1`` is far from pure noise). Samplers start from, and
``log_prob`` scores ``x_1`` under, the Gaussian with the moments of ``p_1``, computed from
the training data's mean and covariance (per class for conditional models) at the start
of ``fit``. This is exact for Gaussian data and an approximation otherwise.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from genlab.lightning_modules.base import (
    LikelihoodModel,
    data_of,
    log_step_loss,
)
from genlab.nn import diffusion as nd
from genlab.nn.modes import full_precision

SAMPLERS = ("ddim", "ddpm")


class Diffusion(LikelihoodModel):
    """A diffusion model of float points ``[B, D]`` (D = 2 for the point data sets).

    Logs ``train/loss`` (mean squared error of the predicted noise, per step),
    ``{val,test}/loss`` (the same on the split) and ``{val,test}/nats_per_dim`` and
    ``bits_per_dim`` (minus the exact ODE log-density per coordinate; a density of
    continuous points, so it can be negative). For conditional models every figure is
    conditional on the batch's labels.

    Args:
        schedule: ``"exponential"`` (``sigma = exp(exponent (t - 1))``, alpha = 1),
            ``"cosine"`` (variance preserving), or a dotted path to a ``Schedule`` class or
            to a function ``t -> sigma(t)``.
        schedule_options: keyword arguments of the schedule, e.g. ``{exponent: 5.0}``.
        dim: coordinates per point.
        hidden_units: width of the denoiser's hidden layers.
        num_hidden_layers: hidden layers of the denoiser.
        time_features: Fourier features of t fed to the denoiser.
        num_classes: classes of a conditional model (linked from the data module); 0 for
            an unconditional one.
        label_dropout: probability of replacing a label by the null class in training,
            which teaches the unconditional model used by guidance.
        guidance: default guidance weight w of classifier-free guidance,
            ``eps = (1 + w) eps(x, t, c) - w eps(x, t)``; 0 samples ``p(x | c)``.
        sampler: default sampler, ``"ddim"`` (deterministic) or ``"ddpm"`` (stochastic).
        sample_steps: default number of sampling steps T.
        noise_level: default lambda of the DDPM-style sampler: 1 is DDPM's ancestral
            step, 0 would be DDIM.
        likelihood_steps: RK4 steps of the probability-flow ODE in ``log_prob``.
        elbo_steps: grid steps of the discrete-time model whose bound ``elbo`` estimates.
        learning_rate: Adam's step size.
    """

    name = "diffusion"

    def __init__(
        self,
        schedule: str = "exponential",
        schedule_options: dict | None = None,
        dim: int = 2,
        hidden_units: int = 128,
        num_hidden_layers: int = 3,
        time_features: int = 16,
        num_classes: int = 0,
        label_dropout: float = 0.1,
        guidance: float = 0.0,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        sample_steps: int = 50,
        noise_level: float = 1.0,
        likelihood_steps: int = 100,
        elbo_steps: int = 1000,
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__(learning_rate)
        check_sampler(sampler)
        if not 0 <= label_dropout <= 1:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}")
        if min(sample_steps, likelihood_steps, elbo_steps) < 1:
            raise ValueError("sample_steps, likelihood_steps and elbo_steps must be >= 1")
        self.save_hyperparameters()
        self.schedule = nd.make_schedule(schedule, schedule_options)
        self.denoiser = nd.NoiseMLP(
            dim, hidden_units, num_hidden_layers, time_features, num_classes
        )
        self.num_classes = num_classes
        self.register_buffer("data_mean", torch.zeros(num_classes + 1, dim))
        self.register_buffer("data_covariance", torch.eye(dim).repeat(num_classes + 1, 1, 1))
        self.register_buffer("has_statistics", torch.tensor(False))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """The predicted noise ``eps_hat(x_t, t[, c])``, ``[B, D]``."""
        return self.denoiser(x, t, cond)

    def diffuse(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """The forward process ``alpha(t) x0 + sigma(t) noise`` (one t per row)."""
        return nd.diffuse(self.schedule, x0, t, noise)

    def fit_statistics(self, points: Tensor, labels: Tensor | None = None) -> None:
        """Store the data's mean and covariance (overall, and per class for conditional
        models; a class with fewer than 2 points gets the overall ones), which fix the
        Gaussian the samplers start from. Called at the start of ``fit``."""
        points = points.to(self.data_mean)
        groups = [points] * self.num_classes + [points]
        for c in range(self.num_classes):
            chosen = points[labels.to(points.device) == c] if labels is not None else points
            groups[c] = chosen if len(chosen) > 1 else points
        for c, group in enumerate(groups):
            self.data_mean[c] = group.mean(dim=0)
            self.data_covariance[c] = torch.cov(group.T).reshape_as(self.data_covariance[c])
        self.has_statistics.fill_(True)

    def on_train_start(self) -> None:
        if bool(self.has_statistics):
            return
        datamodule = self.trainer.datamodule
        loader = datamodule.train_dataloader() if datamodule else self.trainer.train_dataloader
        batches = [tuple(b) if isinstance(b, (tuple, list)) else (b,) for b in loader]
        points = torch.cat([b[0] for b in batches])
        labels = torch.cat([b[1] for b in batches]) if len(batches[0]) > 1 else None
        self.fit_statistics(points, labels)

    def check_cond(self, cond: Tensor | int | None, count: int) -> Tensor | None:
        """``cond`` as labels ``[count]`` on the model's device (an int applies to all),
        after checking that it fits the model."""
        if cond is None:
            return None
        if self.num_classes == 0:
            raise ValueError("this model is unconditional (num_classes=0); pass cond=None")
        cond = torch.as_tensor(cond, device=self.device).long().reshape(-1).expand(count)
        if cond.numel() and (cond.min() < 0 or cond.max() >= self.num_classes):
            raise ValueError(
                f"cond must hold classes 0..{self.num_classes - 1}, got "
                f"{cond.min().item()}..{cond.max().item()}"
            )
        return cond

    def labels_of(self, batch: Tensor | tuple) -> Tensor | None:
        """The batch's labels as the condition of a conditional model, None otherwise."""
        if self.num_classes == 0:
            return None
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("a conditional model needs batches (points, labels)")
        return self.check_cond(batch[1], len(batch[1]))

    def noise_predictor(self, cond: Tensor | None, guidance: float = 0.0) -> nd.NoisePredictor:
        """``eps_fn(x, t)`` for the samplers and likelihoods: conditional on ``cond`` and,
        for ``guidance`` w != 0, ``(1 + w) eps(x, t, c) - w eps(x, t)`` (Ho & Salimans
        2022). Without ``cond`` it is the unconditional prediction and w is unused."""
        if cond is None or guidance == 0:
            return lambda x, t: self.denoiser(x, t, cond)

        def guided(x: Tensor, t: Tensor) -> Tensor:
            unconditional = self.denoiser(x, t, None)
            return (1 + guidance) * self.denoiser(x, t, cond) - guidance * unconditional

        return guided

    def terminal(self, cond: Tensor | None, count: int) -> tuple[Tensor, Tensor]:
        """Mean ``[count, D]`` and covariance ``[count, D, D]`` of the Gaussian for ``x_1``."""
        index = torch.full((count,), self.num_classes, device=self.device)
        if cond is not None:
            index = cond
        return nd.terminal_gaussian(
            self.schedule, self.data_mean[index], self.data_covariance[index]
        )

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Mean squared error of the predicted noise at uniform random times (labels are
        dropped to the null class with probability ``label_dropout`` in training)."""
        t = torch.rand(len(x), device=x.device)
        noise = torch.randn_like(x)
        if cond is not None and self.training:
            dropped = torch.rand(len(x), device=x.device) < self.hparams.label_dropout
            cond = torch.where(dropped, torch.full_like(cond, self.num_classes), cond)
        return (self.denoiser(self.diffuse(x, t, noise), t, cond) - noise).pow(2).mean()

    def training_step(self, batch: Tensor | tuple, batch_idx: int) -> Tensor:
        loss = self.loss(data_of(batch), self.labels_of(batch))
        log_step_loss(self, loss)
        return loss

    def validation_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self.evaluate("val", batch)

    def test_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self.evaluate("test", batch)

    def evaluate(self, stage: str, batch: Tensor | tuple) -> None:
        x, cond = data_of(batch), self.labels_of(batch)
        self.log(f"{stage}/loss", self.loss(x, cond), batch_size=len(x), sync_dist=True)
        self._log_nats(stage, self.batch_nats(batch))

    def batch_nats(self, batch: Tensor | tuple) -> Tensor:
        """Minus the exact ODE log-density of each point (given its label for
        conditional models), per coordinate."""
        x = data_of(batch)
        return -self.log_prob(x, self.labels_of(batch)) / x.shape[1]

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``log p_0(x [| c])`` in nats per point through the probability-flow ODE with the
        exact divergence (RK4, ``likelihood_steps``), unguided. Exact up to the ODE
        discretisation and the Gaussian terminal law (exact for Gaussian data). Float32
        even under autocast: the divergence and the integral are the figure."""
        # the divergence needs autograd, even in `test`
        with torch.inference_mode(False), full_precision(self.device):
            x = x.clone()
            cond = self.check_cond(None if cond is None else torch.as_tensor(cond).clone(), len(x))
            mean, covariance = self.terminal(cond, len(x))
            return nd.ode_log_prob(
                self.noise_predictor(cond),
                self.schedule,
                x,
                mean,
                covariance,
                self.hparams.likelihood_steps,
            )

    def elbo(
        self,
        x: Tensor,
        cond: Tensor | None = None,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One Monte Carlo draw of the variational lower bound on ``log p(x [| c])`` of the
        discrete-time model on ``steps`` (default ``elbo_steps``) grid steps, in nats per
        point (see ``genlab.nn.diffusion.elbo``). Noisy: average several draws."""
        cond = self.check_cond(cond, len(x))
        mean, covariance = self.terminal(cond, len(x))
        with torch.no_grad(), full_precision(self.device):
            return nd.elbo(
                self.noise_predictor(cond),
                self.schedule,
                x,
                mean,
                covariance,
                steps or self.hparams.elbo_steps,
                generator,
            )

    def initial_noise(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise ``[num_samples, D]`` on the model's device, drawn on the
        CPU so that a CPU generator gives the same noise on every device."""
        return torch.randn(num_samples, self.hparams.dim, generator=generator).to(self.device)

    def sample(
        self,
        num_samples: int,
        cond: Tensor | int | None = None,
        *,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        noise_level: float | None = None,
        guidance: float | None = None,
    ) -> Tensor:
        """Samples ``[num_samples, D]``: float points at t = 0. Unset options take the
        model's defaults; ``cond`` (labels or one int) needs a conditional model."""
        steps = steps or self.hparams.sample_steps
        initial = self.initial_noise(num_samples, generator)
        injected = None
        level = self.noise_level_of(sampler, noise_level)
        if level > 0:
            injected = torch.randn(steps, num_samples, self.hparams.dim, generator=generator)
            injected = injected.to(self.device)
        with torch.no_grad():
            return self.sample_from_noise(
                initial,
                cond,
                injected_noise=injected,
                steps=steps,
                sampler=sampler,
                noise_level=noise_level,
                guidance=guidance,
            )

    def noise_level_of(self, sampler: str | None, noise_level: float | None) -> float:
        """Lambda of a sampler: 0 for DDIM, ``noise_level`` (or the default) for DDPM."""
        sampler = sampler or self.hparams.sampler
        check_sampler(sampler)
        if sampler == "ddim":
            return 0.0
        return self.hparams.noise_level if noise_level is None else noise_level

    def sample_from_noise(
        self,
        initial_noise: Tensor,
        cond: Tensor | int | None = None,
        *,
        injected_noise: Tensor | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        noise_level: float | None = None,
        guidance: float | None = None,
        return_trajectory: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The sampler as a function of its noise: standard normal ``initial_noise``
        ``[B, D]`` (mapped onto the terminal Gaussian) and, for DDPM, ``injected_noise``
        ``[steps, B, D]``. Differentiable in both (this is how a sample is steered). With
        ``return_trajectory`` also returns the states ``[steps + 1, B, D]`` from t = 1."""
        cond = self.check_cond(cond, len(initial_noise))
        guidance = self.hparams.guidance if guidance is None else guidance
        mean, covariance = self.terminal(cond, len(initial_noise))
        start = mean + (torch.linalg.cholesky(covariance) @ initial_noise[..., None])[..., 0]
        return nd.sample(
            self.noise_predictor(cond, guidance),
            self.schedule,
            start,
            steps or self.hparams.sample_steps,
            noise_level=self.noise_level_of(sampler, noise_level),
            injected_noise=injected_noise,
            return_trajectory=return_trajectory,
        )


def check_sampler(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
