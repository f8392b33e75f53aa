"""Variational autoencoder (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes")
over integer images, with a categorical likelihood for every subpixel's level.

A convolutional encoder gives a diagonal Gaussian posterior q(z|x); the prior p(z) is
the standard normal; a convolutional decoder maps a code to independent categoricals
over the K levels of every subpixel, p(x|z). Training maximises the evidence lower
bound ``ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))``, its expectation estimated with
one reparameterised draw of z and its KL in closed form.

The ELBO is a lower bound on ``log p(x)``: its negative, logged as ``*/nats_per_dim``,
is an upper bound on the negative log-likelihood, not the likelihood itself. At test
time the importance-weighted estimate of Burda et al. (2016, "Importance Weighted
Autoencoders") with k draws, ``log (1/k) sum_i p(x, z_i) / q(z_i|x)``, gives a tighter
figure: a lower bound in expectation that rises with k towards ``log p(x)``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torchmetrics import MeanMetric

from genlab.lightning_modules.base import (
    LikelihoodModel,
    check_discrete_data,
    data_of,
    log_step_loss,
)
from genlab.nn.distributions import categorical_log_prob
from genlab.nn.latent import (
    CategoricalDecoder,
    ConvEncoder,
    DiagonalGaussian,
    check_latent_dim,
    levels_of,
    log_mean_exp,
    random_normal,
    standard_normal_log_prob,
)
from genlab.nn.modes import evaluating

SampleLevels = Literal["most_likely", "sampled"]
SAMPLE_LEVELS = ("most_likely", "sampled")


def check_sample_levels(sample_levels: str) -> None:
    if sample_levels not in SAMPLE_LEVELS:
        raise ValueError(f"sample_levels must be one of {SAMPLE_LEVELS}, got {sample_levels!r}")


class ElboTerms(NamedTuple):
    """The two parts of the negative ELBO of each example ``[B]``, in nats:
    ``recon = -log p(x|z)`` at one draw ``z ~ q(z|x)``, and ``kl = KL(q(z|x) || p(z))``."""

    recon: Tensor
    kl: Tensor


class CodeDecoding:
    """Decoding codes into images, shared by the latent-variable models. Needs
    ``decoder`` (a ``CategoricalDecoder``), ``latent_dim`` and the hyperparameter
    ``sample_levels``."""

    decoder: CategoricalDecoder
    latent_dim: int

    @torch.no_grad()
    def decode(
        self,
        z: Tensor,
        *,
        generator: torch.Generator | None = None,
        levels: SampleLevels | None = None,
    ) -> Tensor:
        """Images ``[B, C, H, W]`` (LongTensor in ``0..K-1``, like the data) of codes
        ``[B, latent_dim]``: the most likely level of every subpixel given the code, or a
        draw of it (``levels``; default: the ``sample_levels`` hyperparameter)."""
        levels = levels or self.hparams.sample_levels
        check_sample_levels(levels)
        with evaluating(self):
            return levels_of(self.decoder(z), levels == "sampled", generator)

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        levels: SampleLevels | None = None,
    ) -> Tensor:
        """Decoded prior draws ``z ~ N(0, I)``; see ``decode`` for ``levels``. With
        ``levels="sampled"`` these are exact samples of the model's ``p(x)``; the most
        likely levels show the same codes without the decoder's per-subpixel noise."""
        z = random_normal((num_samples, self.latent_dim), self.device, generator)
        return self.decode(z, generator=generator, levels=levels)


class VAE(CodeDecoding, LikelihoodModel):
    """VAE over integer images ``[B, C, H, W]`` with ``num_levels`` levels per subpixel
    (H and W multiples of 4); the encoder sees the levels scaled to ``[-1, 1]``.

    Logs the negative ELBO, an upper bound on the NLL, as ``train/loss`` (per step) and
    ``{train,val,test}/{nats,bits}_per_dim`` (train: epoch means; val/test: exact means
    over the split), split into ``{stage}/recon_nats_per_dim`` and
    ``{stage}/kl_nats_per_dim``; and at test time the importance-weighted estimate with
    ``test_iw_samples`` draws as ``test/iw_nats_per_dim`` and ``test/iw_bits_per_dim``.
    Every figure uses fresh draws of z, so repeated evaluations differ slightly.

    ``log_prob`` is deliberately absent (it raises): genlab's ``log_prob`` is an exact
    log-likelihood, and a VAE has none. ``elbo(x)`` is the bound and
    ``log_prob_iw(x, k)`` the importance-weighted estimate.

    Args:
        image_shape: (channels, height, width) of the data; linked from the data module.
        num_levels: values per subpixel (K levels); linked from the data module.
        latent_dim: size of the code z.
        hidden_channels: filters of the first encoder convolution and the last decoder
            one (the middle layers have twice as many).
        test_iw_samples: draws k of the importance-weighted test estimate (0: skip it).
        sample_levels: what ``sample`` and ``decode`` return for each subpixel:
            "most_likely" (the usual picture of a VAE's samples) or "sampled" (a draw
            from the decoder's categorical, a true sample of the model).
        learning_rate: Adam's step size.
    """

    name = "vae"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_levels: int = 16,
        latent_dim: int = 20,
        hidden_channels: int = 32,
        test_iw_samples: int = 100,
        sample_levels: SampleLevels = "most_likely",
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__(learning_rate)
        self.save_hyperparameters()
        check_latent_dim(latent_dim)
        check_sample_levels(sample_levels)
        if test_iw_samples < 0:
            raise ValueError(f"test_iw_samples must be 0 (off) or more, got {test_iw_samples}")
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(self.image_shape, num_levels, hidden_channels, 2 * latent_dim)
        self.decoder = CategoricalDecoder(latent_dim, self.image_shape, num_levels, hidden_channels)
        parts = ["val_recon", "val_kl", "test_recon", "test_kl", "test_iw"]
        self.part_nats_per_dim = torch.nn.ModuleDict({part: MeanMetric() for part in parts})
        self.iw_bits_per_dim = MeanMetric()

    def posterior(self, x: Tensor) -> DiagonalGaussian:
        """q(z|x) of integer images ``x``."""
        check_discrete_data(x, self.image_shape, self.num_levels, "images")
        return DiagonalGaussian.from_features(self.encoder(x))

    def forward(self, x: Tensor) -> tuple[Tensor, DiagonalGaussian]:
        """Logits ``[B, C, K, H, W]`` of p(x|z) at one reparameterised draw ``z ~ q(z|x)``,
        and q(z|x)."""
        posterior = self.posterior(x)
        return self.decoder(posterior.rsample()), posterior

    def elbo_terms(self, x: Tensor, generator: torch.Generator | None = None) -> ElboTerms:
        """Reconstruction NLL (one draw of z, from ``generator``) and closed-form KL of
        each example, in nats."""
        posterior = self.posterior(x)
        logits = self.decoder(posterior.rsample(generator=generator))
        return ElboTerms(-categorical_log_prob(logits, x, dim=2), posterior.kl_to_standard_normal())

    def elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Evidence lower bound of each example ``[B]`` in nats (one draw of z)."""
        recon, kl = self.elbo_terms(x, generator)
        return -(recon + kl)

    def log_prob_iw(
        self, x: Tensor, num_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Importance-weighted estimate of ``log p(x)`` of each example ``[B]`` in nats,
        with ``num_samples`` draws of q(z|x) decoded one batch at a time. Its
        expectation never exceeds ``log p(x)`` and rises with ``num_samples``; one draw
        is the ELBO with a sampled KL."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        posterior = self.posterior(x)
        log_weights = torch.stack(
            [self._log_weight(x, posterior, generator) for _ in range(num_samples)]
        )
        return log_mean_exp(log_weights, dim=0)

    def _log_weight(
        self, x: Tensor, posterior: DiagonalGaussian, generator: torch.Generator | None
    ) -> Tensor:
        """``log p(x|z) + log p(z) - log q(z|x)`` at one draw ``z ~ q(z|x)``."""
        z = posterior.rsample(generator=generator)
        log_likelihood = categorical_log_prob(self.decoder(z), x, dim=2)
        return log_likelihood + standard_normal_log_prob(z) - posterior.log_prob(z)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        raise NotImplementedError(
            "a VAE has no exact log-likelihood: use elbo(x) for the lower bound or "
            "log_prob_iw(x, num_samples) for the importance-weighted estimate"
        )

    @torch.no_grad()
    def encode(self, images: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One draw ``z ~ q(z|x)`` ``[B, latent_dim]`` of each integer image: codes whose
        spread over a data set is the aggregate posterior the prior should match."""
        with evaluating(self):
            return self.posterior(images).rsample(generator=generator)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Most likely levels of p(x|z) at the posterior mean of each image."""
        with evaluating(self):
            return self.decode(self.posterior(images).mean, levels="most_likely")

    def batch_nats(self, batch: Tensor | tuple) -> Tensor:
        """Negative ELBO per dim of each example (an upper bound on its NLL per dim)."""
        recon, kl = self.terms_per_dim(data_of(batch))
        return recon + kl

    def terms_per_dim(self, x: Tensor) -> ElboTerms:
        """``elbo_terms`` divided by the dims of one example."""
        recon, kl = self.elbo_terms(x)
        return ElboTerms(recon / x[0].numel(), kl / x[0].numel())

    def training_step(self, batch: Tensor | tuple, batch_idx: int) -> Tensor:
        recon, kl = self.terms_per_dim(data_of(batch))
        loss = (recon + kl).mean()
        log_step_loss(self, loss)
        for name, value in [
            ("nats_per_dim", loss),
            ("bits_per_dim", loss / math.log(2)),
            ("recon_nats_per_dim", recon.mean()),
            ("kl_nats_per_dim", kl.mean()),
        ]:
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self._evaluate("val", data_of(batch))

    def test_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        x = data_of(batch)
        self._evaluate("test", x)
        if self.hparams.test_iw_samples > 0:
            nats = -self.log_prob_iw(x, self.hparams.test_iw_samples) / x[0].numel()
            self._log_part("test", "iw", nats)
            self.iw_bits_per_dim.update(nats / math.log(2))
            self.log("test/iw_bits_per_dim", self.iw_bits_per_dim)

    def _evaluate(self, stage: str, x: Tensor) -> None:
        recon, kl = self.terms_per_dim(x)
        self._log_nats(stage, recon + kl)
        self._log_part(stage, "recon", recon)
        self._log_part(stage, "kl", kl)

    def _log_part(self, stage: str, part: str, nats: Tensor) -> None:
        metric = self.part_nats_per_dim[f"{stage}_{part}"]
        metric.update(nats)
        self.log(f"{stage}/{part}_nats_per_dim", metric)
