"""A token prior for a VQ-VAE (van den Oord et al., 2017): a GPT over the tokens of a
frozen, trained VQ-VAE (the raster-ordered code grid, or with global colours the
foreground and background colours then the stroke's codes, see ``VQVAE``), so that
sampling tokens and decoding them draws new images.

The prior is trained on the VQ-VAE's tokens of the usual image data. The code grids of
each split are computed once and cached next to the VQ-VAE checkpoint, in
``<ckpt>.tokens.<digest>.pt`` where the digest hashes the split's images, so another data
set (or another split) never reads codes that are not its own. Batches still arrive as
images; the prior looks each image's code grid up by a hash of what the encoder sees of
it (the image, or with global colours its stroke, so a digit repainted in new colours is
still found), reads colour tokens from the image itself, and encodes only images it has
not cached (a ``log_prob`` of new images).

Metrics are the NLL of the *tokens*, ``-log p(z(x))``: ``*/nats_per_token`` per token, and
``*/nats_per_dim`` that NLL divided by the image's subpixels, to compare scales with the
pixel models. It is not ``-log p(x)``: the VQ-VAE's reconstruction term is not included.
A token's ids are restricted to those its position may hold (``VQVAE.allowed_tokens``:
colours or codes), in the likelihood and in sampling alike.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from genlab.lightning_modules.base import LikelihoodModel, warmup_cosine_schedule
from genlab.lightning_modules.vqvae import VQVAE
from genlab.nn.distributions import categorical_log_prob
from genlab.nn.modes import evaluating
from genlab.nn.transformer import GPT, GPTConfig

CACHED_SPLITS = {"fit": ("train_set", "val_set"), "test": ("test_set",)}


def image_key(image: Tensor) -> bytes:
    """A 16-byte digest of one integer image (its levels as bytes, and its shape)."""
    data = image.detach().cpu().to(torch.uint8).contiguous().numpy().tobytes()
    return hashlib.blake2b(data + str(tuple(image.shape)).encode(), digest_size=16).digest()


def token_cache_path(ckpt_path: str | Path, images: Tensor) -> Path:
    """``<ckpt>.tokens.<digest>.pt``: the cache file of these images' code grids, beside
    the VQ-VAE checkpoint; the digest covers every image, so each split has its own file."""
    digest = hashlib.blake2b(digest_size=8)
    for image in images:
        digest.update(image_key(image))
    return Path(f"{ckpt_path}.tokens.{digest.hexdigest()}.pt")


@torch.no_grad()
def token_cache(
    vqvae: VQVAE, images: Tensor, ckpt_path: str | Path, batch_size: int = 256
) -> Tensor:
    """Code grids ``[N, h, w]`` (CPU LongTensor) of integer images ``[N, C, H, W]``, that
    is of their encoder inputs (``VQVAE.encoder_input``; with local colours, the images'
    tokens): read from the cache file beside ``ckpt_path`` when it exists, else encoded
    batch by batch on the VQ-VAE's device and written there (atomically, so that
    parallel processes never read half a file)."""
    path = token_cache_path(ckpt_path, images)
    if path.is_file():
        return torch.load(path, weights_only=True)
    device = next(vqvae.parameters()).device
    with evaluating(vqvae):
        grids = torch.cat(
            [
                vqvae.code_grid(vqvae.encoder_input(chunk.to(device).long())).cpu()
                for chunk in images.split(batch_size)
            ]
        )
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(grids, partial)
    os.replace(partial, path)
    return grids


def vqvae_of_checkpoint(ckpt_path: str) -> tuple[VQVAE, dict]:
    """The VQ-VAE saved in ``ckpt_path`` and its constructor arguments. Built by hand
    rather than with ``VQVAE.load_from_checkpoint``: inside the CLI's instantiation of the
    prior, Lightning would record the prior's arguments as the VQ-VAE's hyperparameters.
    Lightning checkpoints hold more than tensors, hence ``weights_only=False``: load only
    checkpoints you trust."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    hparams = constructor_arguments(checkpoint["hyper_parameters"])
    vqvae = VQVAE(**hparams)
    vqvae.load_state_dict(checkpoint["state_dict"])
    return vqvae, hparams


def constructor_arguments(hparams: dict) -> dict:
    """The VQ-VAE's hyperparameters that its constructor takes (the CLI adds others)."""
    accepted = inspect.signature(VQVAE).parameters
    return {name: value for name, value in hparams.items() if name in accepted}


def check_vqvae_data(
    vqvae: VQVAE, image_shape: tuple | None, num_levels: int | None, ckpt_path: str
) -> None:
    """Stop unless the data's images (``image_shape`` and ``num_levels`` linked from the
    data module; None: not known) are the kind the VQ-VAE of ``ckpt_path`` was trained on."""
    if image_shape is not None and tuple(image_shape) != vqvae.image_shape:
        raise ValueError(
            f"data image_shape {tuple(image_shape)} differs from the VQ-VAE's "
            f"{vqvae.image_shape} ({ckpt_path})"
        )
    if num_levels is not None and num_levels != vqvae.num_levels:
        raise ValueError(
            f"data num_levels {num_levels} differs from the VQ-VAE's {vqvae.num_levels} "
            f"({ckpt_path})"
        )


def split_tokens(
    vqvae: VQVAE, datamodule: object, names: tuple[str, ...], ckpt_path: str | Path
) -> dict[bytes, Tensor]:
    """Code grids of the images of the data module's splits ``names`` (those it has),
    keyed by the ``image_key`` of their encoder inputs: read from, or encoded once into,
    the caches beside ``ckpt_path``."""
    cached: dict[bytes, Tensor] = {}
    for name in names:
        dataset = getattr(datamodule, name, None)
        if dataset is None:
            continue
        grids = token_cache(vqvae, dataset.images, ckpt_path)
        keys = [
            image_key(data)
            for chunk in dataset.images.split(1024)
            for data in vqvae.encoder_input(chunk.long())
        ]
        cached.update(zip(keys, grids, strict=True))
    return cached


def lookup_tokens(vqvae: VQVAE, cached: dict[bytes, Tensor], images: Tensor) -> Tensor:
    """Tokens ``[B, *token_shape]`` of integer images: built from the ``cached`` code
    grids when every image's encoder input is there, else the VQ-VAE's ``encode``."""
    if cached:
        inputs = vqvae.encoder_input(images)
        keys = [image_key(data) for data in inputs.cpu()]
        if all(key in cached for key in keys):
            grids = torch.stack([cached[key] for key in keys]).to(images.device)
            return vqvae.tokens(images, grids)
    return vqvae.encode(images)


class FrozenVQVAEModel(LikelihoodModel):
    """A likelihood model over the tokens of a frozen, trained VQ-VAE.

    ``attach_vqvae`` loads the VQ-VAE from its checkpoint (or, when a checkpoint of this
    model is reloaded, rebuilds it from ``vqvae_hparams``, its weights coming back with
    this model's state dict), so a checkpoint of this model is self-contained. The
    VQ-VAE stays in eval mode with ``requires_grad`` off; each split's tokens are
    encoded once, cached beside the VQ-VAE checkpoint, and looked up by ``tokens_of``.
    Subclasses call ``save_hyperparameters()`` with ``vqvae_checkpoint`` and
    ``vqvae_hparams`` among their arguments, then ``attach_vqvae``.
    """

    def attach_vqvae(
        self,
        vqvae_checkpoint: str,
        vqvae_hparams: dict | None,
        image_shape: tuple | None,
        num_levels: int | None,
    ) -> None:
        """Load and freeze the VQ-VAE, check it against the data's ``image_shape`` and
        ``num_levels``, and take its image shape and levels as this model's."""
        if vqvae_hparams is None:
            vqvae, self.hparams.vqvae_hparams = vqvae_of_checkpoint(vqvae_checkpoint)
        else:  # reloading this model: the VQ-VAE's weights are in its state dict
            vqvae = VQVAE(**vqvae_hparams)
        self.vqvae = vqvae.eval().requires_grad_(False)
        check_vqvae_data(self.vqvae, image_shape, num_levels, vqvae_checkpoint)
        self.image_shape = self.vqvae.image_shape
        self.num_levels = self.vqvae.num_levels
        self._cached_tokens: dict[bytes, Tensor] = {}

    def train(self, mode: bool = True) -> FrozenVQVAEModel:
        """Train mode for everything but the frozen VQ-VAE, which stays in eval mode."""
        super().train(mode)
        self.vqvae.eval()
        return self

    def on_fit_start(self) -> None:
        self._cache_splits(CACHED_SPLITS["fit"])

    def on_test_start(self) -> None:
        self._cache_splits(CACHED_SPLITS["test"])

    def _cache_splits(self, names: tuple[str, ...]) -> None:
        """Load (or encode once and save) the tokens of the data module's splits."""
        datamodule = getattr(self.trainer, "datamodule", None)
        self._cached_tokens.update(
            split_tokens(self.vqvae, datamodule, names, self.hparams.vqvae_checkpoint)
        )

    def tokens_of(self, images: Tensor) -> Tensor:
        """Tokens ``[B, *token_shape]`` of integer images, from the cached code grids when
        every image's encoder input is in the cache, else the VQ-VAE's ``encode``."""
        return lookup_tokens(self.vqvae, self._cached_tokens, images)


class VQPrior(FrozenVQVAEModel):
    """A GPT over the ``T`` tokens of a frozen VQ-VAE (vocabulary: its token ids; context
    ``T + 1`` with ``<bos>``), its logits masked to the ids each position may hold.

    The VQ-VAE is a submodule in eval mode with ``requires_grad`` off and outside the
    optimizer; its weights are stored in the prior's state dict and its hyperparameters
    in ``vqvae_hparams``, so a prior checkpoint is self-contained:
    ``VQPrior.load_from_checkpoint(path)`` rebuilds it without the VQ-VAE file.

    Args:
        vqvae_checkpoint: checkpoint of the trained VQ-VAE; also where the token caches go.
        image_shape: (channels, height, width); linked from the data module, must be the
            VQ-VAE's (None: the VQ-VAE's).
        num_levels: values per subpixel; linked from the data module, must be the VQ-VAE's.
        width: embedding width (course: 128).
        num_heads: attention heads (course: 4).
        num_layers: transformer blocks (course: 2).
        dropout: dropout on embeddings, attention and MLP outputs.
        learning_rate: peak Adam step size.
        warmup_steps: linear warm-up steps before the cosine decay.
        vqvae_hparams: filled in by the prior from the VQ-VAE checkpoint; leave it None.
    """

    name = "vq_prior"

    def __init__(
        self,
        vqvae_checkpoint: str,
        image_shape: tuple[int, int, int] | None = None,
        num_levels: int | None = None,
        width: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        warmup_steps: int = 1000,
        vqvae_hparams: dict | None = None,
    ) -> None:
        super().__init__(learning_rate)
        self.save_hyperparameters()
        self.attach_vqvae(vqvae_checkpoint, vqvae_hparams, image_shape, num_levels)
        self.num_tokens = math.prod(self.vqvae.token_shape)
        self.dims_per_token = math.prod(self.image_shape) / self.num_tokens
        self.register_buffer("allowed", self.vqvae.allowed_tokens, persistent=False)
        config = GPTConfig(
            vocab_size=self.vqvae.vocab_size,
            context_length=self.num_tokens + 1,
            width=width,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.gpt = GPT(config)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits ``[B, T, vocab_size]`` of tokens ``[B, *token_shape]``: row
        ``t`` is the distribution of token ``t`` (in order) given the tokens before,
        ``-inf`` at ids that position may not hold."""
        logits = self.gpt(self.gpt.with_bos(tokens.flatten(1))[:, :-1])
        return logits.masked_fill(~self.allowed, float("-inf"))

    def token_log_prob(self, tokens: Tensor) -> Tensor:
        """Exact log-probability of the tokens ``[B, *token_shape]`` of each image under
        the prior, in nats."""
        return categorical_log_prob(self(tokens), tokens.flatten(1), dim=2)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Log-probability in nats of each image's *tokens*, ``log p(z(x))``, not of the
        image itself (the VQ-VAE's reconstruction term is not included)."""
        return self.token_log_prob(self.tokens_of(x))

    def sample_tokens(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        on_step: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Ancestral samples of tokens ``[num_samples, *token_shape]``, one token per step,
        each drawn among the ids its position may hold; with or without the KV cache the
        same generator gives the same tokens."""
        with evaluating(self):
            tokens = self.gpt.generate_from_bos(
                num_samples,
                self.num_tokens,
                use_cache=use_cache,
                generator=generator,
                on_step=on_step,
                allowed=self.allowed,
            )
        return tokens.view(num_samples, *self.vqvae.token_shape)

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        on_step: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Images ``[num_samples, C, H, W]`` (LongTensor in ``0..K-1``, like the data): the
        VQ-VAE's decoding of sampled tokens."""
        tokens = self.sample_tokens(
            num_samples, generator=generator, use_cache=use_cache, on_step=on_step
        )
        return self.vqvae.decode(tokens)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.Adam(self.gpt.parameters(), lr=self.learning_rate)
        return warmup_cosine_schedule(self, optimizer, self.hparams.warmup_steps)
