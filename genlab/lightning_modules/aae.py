"""Adversarial autoencoder (Makhzani et al., 2016, "Adversarial Autoencoders") over
integer images.

An autoencoder whose codes are pushed towards a prior, the standard normal, by a
discriminator on codes instead of a KL term: the discriminator learns to tell prior
draws from encoded images, and the encoder, as its generator, learns to fool it. The
decoder has the VAE's likelihood (independent categoricals over every subpixel's
level), so decoding prior draws gives new images.

Each training batch runs two phases, with manual optimisation:

1. reconstruction: encoder and decoder take a step on ``lambda * reconstruction NLL``;
2. regularisation: the discriminator takes a step on ``(1 - lambda) * its loss``, then
   the encoder a step on ``(1 - lambda) * the generator loss``.

``lambda`` (``reconstruction_weight``) trades the two: 1 is a plain autoencoder, 0 only
matches the prior. A phase whose weight is 0 is skipped, so at lambda = 1 the
discriminator never touches the encoder or decoder.

The encoder's two steps share one Adam optimiser (the autoencoder's). Adam divides each
step by a running scale of past gradients, so a separate optimiser for the generator
step would undo any constant weight on its loss and make lambda meaningless between 0
and 1; a shared one scales both losses' steps by the same running estimate, so lambda
sets their relative size.

An AAE has no likelihood: it logs ``*/recon_nats_per_dim`` (``-log p(x|z)`` at the
image's own code), never ``*/nats_per_dim``.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanMetric

from genlab.lightning_modules.arguments import CheckedArguments
from genlab.lightning_modules.base import check_discrete_data, data_of, has_progress_bar
from genlab.lightning_modules.vae import CodeDecoding, SampleLevels, check_sample_levels
from genlab.nn.distributions import categorical_log_prob
from genlab.nn.latent import (
    CategoricalDecoder,
    CodeDiscriminator,
    ConvEncoder,
    DiagonalGaussian,
    check_latent_dim,
    random_normal,
    rbf_mmd2,
)
from genlab.nn.modes import evaluating


class AAE(CheckedArguments, CodeDecoding, L.LightningModule):
    """Adversarial autoencoder over integer images ``[B, C, H, W]`` with ``num_levels``
    levels per subpixel (H and W multiples of 4).

    Logs ``train/recon_nats_per_dim``, ``train/discriminator_loss``,
    ``train/generator_loss`` and ``train/discriminator_accuracy`` per step (for the
    phases that run), and for val/test ``{stage}/recon_nats_per_dim`` (exact mean over
    the split), ``{stage}/discriminator_accuracy`` and ``{stage}/prior_mmd`` (means
    over batches): the unbiased squared MMD between a batch's codes and as many prior
    draws, with an RBF kernel of bandwidth ``sqrt(latent_dim)`` (two prior draws lie
    ``sqrt(2 * latent_dim)`` apart on average).

    Args:
        image_shape: (channels, height, width) of the data; linked from the data module.
        num_levels: values per subpixel (K levels); linked from the data module.
        latent_dim: size of the code z.
        hidden_channels: filters of the first encoder convolution and the last decoder
            one (the middle layers have twice as many).
        stochastic_encoder: the encoder gives a diagonal Gaussian q(z|x) and the code is a
            reparameterised draw of it (the paper's "Gaussian posterior"); otherwise the
            code is the encoder's output.
        reconstruction_weight: lambda in [0, 1], the weight of the reconstruction phase;
            the regularisation phase has weight 1 - lambda.
        discriminator_hidden_units: width of the discriminator's hidden layers.
        discriminator_layers: number of hidden layers of the discriminator.
        sample_levels: what ``sample`` and ``decode`` return for each subpixel:
            "most_likely" or "sampled" (a draw from the decoder's categorical).
        learning_rate: Adam's step size for the encoder and decoder.
        discriminator_learning_rate: Adam's step size for the discriminator.
    """

    name = "aae"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_levels: int = 16,
        latent_dim: int = 8,
        hidden_channels: int = 32,
        stochastic_encoder: bool = False,
        reconstruction_weight: float = 0.9,
        discriminator_hidden_units: int = 256,
        discriminator_layers: int = 2,
        sample_levels: SampleLevels = "most_likely",
        learning_rate: float = 1e-3,
        discriminator_learning_rate: float = 1e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        check_latent_dim(latent_dim)
        check_sample_levels(sample_levels)
        if not 0 <= reconstruction_weight <= 1:
            raise ValueError(
                f"reconstruction_weight (lambda) must lie in [0, 1], got {reconstruction_weight}"
            )
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        self.latent_dim = latent_dim
        code_features = 2 * latent_dim if stochastic_encoder else latent_dim
        self.encoder = ConvEncoder(self.image_shape, num_levels, hidden_channels, code_features)
        self.decoder = CategoricalDecoder(latent_dim, self.image_shape, num_levels, hidden_channels)
        self.discriminator = CodeDiscriminator(
            latent_dim, discriminator_hidden_units, discriminator_layers
        )
        self.recon_nats_per_dim = torch.nn.ModuleDict(
            {stage: MeanMetric() for stage in ("val", "test")}
        )

    def codes(
        self, x: Tensor, *, generator: torch.Generator | None = None, mean: bool = False
    ) -> Tensor:
        """Codes ``[B, latent_dim]`` of integer images, with gradients: the encoder's
        output, or for a stochastic encoder a reparameterised draw of q(z|x) (its mean
        when ``mean``)."""
        check_discrete_data(x, self.image_shape, self.num_levels, "images")
        features = self.encoder(x)
        if not self.hparams.stochastic_encoder:
            return features
        posterior = DiagonalGaussian.from_features(features)
        return posterior.mean if mean else posterior.rsample(generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, C, K, H, W]`` of p(x|z) at the code of each image."""
        return self.decoder(self.codes(x))

    def recon_nats_per_dim_of(self, x: Tensor) -> Tensor:
        """``-log p(x|z)`` per dim of each image ``[B]`` at its code."""
        return -categorical_log_prob(self(x), x, dim=2) / x[0].numel()

    @torch.no_grad()
    def encode(self, images: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The codes ``[B, latent_dim]`` the discriminator sees for these images (for a
        stochastic encoder, a draw of q(z|x)): their spread over a data set is what the
        adversarial phase matches to the prior."""
        with evaluating(self):
            return self.codes(images, generator=generator)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Most likely levels of p(x|z) at each image's code (a stochastic encoder's
        mean)."""
        with evaluating(self):
            return self.decode(self.codes(images, mean=True), levels="most_likely")

    def prior_draws(self, num_samples: int) -> Tensor:
        return random_normal((num_samples, self.latent_dim), self.device)

    def discriminator_loss(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        """Binary cross-entropy of the discriminator on as many prior draws (label 1) as
        ``codes`` (label 0), and its accuracy on both."""
        prior_logits = self.discriminator(self.prior_draws(len(codes)))
        code_logits = self.discriminator(codes)
        loss = 0.5 * (
            F.binary_cross_entropy_with_logits(prior_logits, torch.ones_like(prior_logits))
            + F.binary_cross_entropy_with_logits(code_logits, torch.zeros_like(code_logits))
        )
        accuracy = torch.cat([prior_logits > 0, code_logits < 0]).float().mean()
        return loss, accuracy

    def generator_loss(self, codes: Tensor) -> Tensor:
        """``-log D(code)``: small when the discriminator takes the codes for prior draws."""
        logits = self.discriminator(codes)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def setup(self, stage: str) -> None:
        """Under DDP, let each backward pass leave parameters unused: every batch takes
        three, each through a part of the model (the reconstruction never reaches the
        discriminator, the generator step never the decoder). Lightning builds its DDP
        wrapper after this hook, from the strategy's keyword arguments."""
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy):
            strategy._ddp_kwargs["find_unused_parameters"] = True

    def training_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        x = data_of(batch)
        autoencoder, discriminator = self.optimizers()
        weight = self.hparams.reconstruction_weight
        if weight > 0:
            self.reconstruction_phase(x, autoencoder, weight)
        if weight < 1:
            self.regularisation_phase(x, autoencoder, discriminator, 1 - weight)

    def reconstruction_phase(
        self, x: Tensor, autoencoder: LightningOptimizer, weight: float
    ) -> None:
        """One step of encoder and decoder on ``weight`` times the reconstruction NLL."""
        with self.toggled_optimizer(autoencoder):
            recon = self.recon_nats_per_dim_of(x).mean()
            autoencoder.zero_grad()
            self.manual_backward(weight * recon)
            autoencoder.step()
        self.log("train/recon_nats_per_dim", recon, on_step=True, prog_bar=has_progress_bar(self))

    def regularisation_phase(
        self,
        x: Tensor,
        autoencoder: LightningOptimizer,
        discriminator: LightningOptimizer,
        weight: float,
    ) -> None:
        """One discriminator step on codes of ``x`` against prior draws, then one encoder
        step (through the autoencoder's optimiser; the decoder gets no gradient) on the
        generator loss, both weighted by ``weight``."""
        with self.toggled_optimizer(discriminator):
            loss, accuracy = self.discriminator_loss(self.codes(x).detach())
            discriminator.zero_grad()
            self.manual_backward(weight * loss)
            discriminator.step()
        with self.toggled_optimizer(autoencoder):
            generator_loss = self.generator_loss(self.codes(x))
            autoencoder.zero_grad()
            self.manual_backward(weight * generator_loss)
            autoencoder.step()
        self.log("train/discriminator_loss", loss, on_step=True)
        self.log("train/discriminator_accuracy", accuracy, on_step=True)
        self.log("train/generator_loss", generator_loss, on_step=True)

    def validation_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self._evaluate("val", data_of(batch))

    def test_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self._evaluate("test", data_of(batch))

    def predict_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """Decoded prior draws, one per requested index; the first index seeds them."""
        generator = torch.Generator().manual_seed(int(batch[0]))
        return self.sample(len(batch), generator=generator)

    def _evaluate(self, stage: str, x: Tensor) -> None:
        codes = self.codes(x)
        recon = -categorical_log_prob(self.decoder(codes), x, dim=2) / x[0].numel()
        self.recon_nats_per_dim[stage].update(recon)
        self.log(f"{stage}/recon_nats_per_dim", self.recon_nats_per_dim[stage], prog_bar=True)
        _, accuracy = self.discriminator_loss(codes)
        self.log(f"{stage}/discriminator_accuracy", accuracy, sync_dist=True)
        if len(codes) >= 2:
            bandwidth = math.sqrt(self.latent_dim)
            mmd = rbf_mmd2(codes, self.prior_draws(len(codes)), bandwidth)
            self.log(f"{stage}/prior_mmd", mmd.float(), sync_dist=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        autoencoder = torch.optim.Adam(
            [*self.encoder.parameters(), *self.decoder.parameters()],
            lr=self.hparams.learning_rate,
        )
        discriminator = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams.discriminator_learning_rate
        )
        return [autoencoder, discriminator]
