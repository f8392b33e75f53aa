"""A multimodal GPT over captions and the tokens of a frozen VQ-VAE: one sequence per
example, ``<bos>`` then the caption and the image in either order, so that one model
draws images from captions, captions from images, and both from nothing.

Joint vocabulary (``JointVocabulary``), with ``W`` caption words and ``K`` image token
ids (the VQ-VAE's ``vocab_size``: its codes, and with global colours its colours too):

====================  ===========================  ==============================
ids                   tokens                       source
====================  ===========================  ==============================
``0 .. W-1``          caption words                ``WordVocabulary`` ids
``W .. W+K-1``        image tokens                 VQ-VAE token ``c`` is ``W + c``
``W+K``               ``<end of text>``            closes a caption
``W+K+1``             ``<end of image>``           closes an image
``W+K+2``             ``<bos>``                    the GPT's own (``GPT.bos``)
====================  ===========================  ==============================

A sequence is ``<bos>``, then ``words.. <end of text>`` and ``image tokens.. <end of
image>`` in either order (the image's ``T`` tokens in the VQ-VAE's order: the ``h*w``
codes in raster order, or with global colours the foreground and background colours
then the stroke's codes). Training draws the order per example and step (a fair coin
from torch's global RNG, which ``seed_everything`` seeds); validation and test put the
text first in even rows of a batch and the image first in odd rows, so their figures do
not change between runs. Captions have 4 to 6 words, so sequences of a batch differ in
length: they are padded at the end, and the padding is no target.

Metrics: ``train/loss`` and ``{val,test}/nats_per_token``, the mean NLL of every
predicted token (words, image tokens and both end tokens; never ``<bos>`` or padding)
over the split. No ``*/nats_per_dim``: a token is a word, a colour or a VQ code covering
48 subpixels, so no "data dimension" is common to all of them; runs keep the best
``val/nats_per_token``.

Sampling masks the logits to the tokens the structure allows at each step, so samples
are well formed whatever the weights: the first token is a word or an image's first
token (choosing the order), an image is exactly its ``T`` tokens, each among the ids its
position may hold (``VQVAE.allowed_tokens``), then ``<end of image>``, and a caption is
1 to ``max_caption_words`` words then ``<end of text>``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence

from genlab.datamodules.multimodal import MAX_CAPTION_WORDS, PAD, WordVocabulary
from genlab.lightning_modules.base import warmup_cosine_schedule
from genlab.lightning_modules.vq_prior import FrozenVQVAEModel
from genlab.nn.modes import evaluating
from genlab.nn.transformer import GPT, GPTConfig, next_token


@dataclass(frozen=True)
class JointVocabulary:
    """Ids of words, image tokens and the two end tokens (layout in the module
    docstring); ``num_codes`` is the number of image token ids."""

    num_words: int
    num_codes: int

    @property
    def end_of_text(self) -> int:
        return self.num_words + self.num_codes

    @property
    def end_of_image(self) -> int:
        return self.end_of_text + 1

    @property
    def size(self) -> int:
        """Number of ids the GPT predicts (``<bos>`` is the GPT's extra one)."""
        return self.end_of_image + 1

    def is_word(self, tokens: Tensor) -> Tensor:
        return (tokens >= 0) & (tokens < self.num_words)

    def is_code(self, tokens: Tensor) -> Tensor:
        return (tokens >= self.num_words) & (tokens < self.end_of_text)

    def text_tokens(self, word_ids: Tensor) -> Tensor:
        """A caption's tokens: its word ids without ``PAD``, then ``<end of text>``."""
        words = word_ids[word_ids != PAD]
        if not bool(self.is_word(words).all()) or len(words) == 0:
            raise ValueError(
                f"a caption needs word ids in 0..{self.num_words - 1} (PAD aside), "
                f"got {word_ids.tolist()}"
            )
        return torch.cat([words, words.new_tensor([self.end_of_text])])

    def image_tokens(self, codes: Tensor) -> Tensor:
        """An image's tokens: its VQ-VAE tokens in order, shifted past the words, then
        ``<end of image>``."""
        flat = codes.flatten() + self.num_words
        return torch.cat([flat, flat.new_tensor([self.end_of_image])])


def assemble_sequences(
    joint: JointVocabulary, captions: Tensor, codes: Tensor, text_first: Tensor, bos: int
) -> tuple[Tensor, Tensor]:
    """GPT inputs and targets ``[B, T]`` of captions ``[B, L]`` (``PAD``-padded word
    ids) and VQ-VAE tokens ``[B, *token_shape]``: each row is ``<bos>`` then the two
    modalities in the order ``text_first [B]`` says, padded at the end. Targets are the sequences
    shifted by one, ``PAD`` after their end; inputs read word 0 there, which only
    positions after the end can see."""
    rows = []
    for words, grid, first in zip(captions, codes, text_first.tolist(), strict=True):
        text, image = joint.text_tokens(words), joint.image_tokens(grid)
        start = text.new_tensor([bos])
        rows.append(torch.cat([start, text, image] if first else [start, image, text]))
    padded = pad_sequence(rows, batch_first=True, padding_value=PAD)
    return padded[:, :-1].clamp(min=0), padded[:, 1:]


class StructureMask:
    """Where each row of a batch being sampled stands (inside its caption or image, how
    many tokens of it so far, which modalities are closed) and which tokens may come
    next: the grammar of a sequence, enforced on the logits. ``image_allowed``
    ``[T, num_codes]`` says which image token ids each of an image's ``T`` tokens may
    hold (``VQVAE.allowed_tokens``)."""

    def __init__(
        self, joint: JointVocabulary, batch: int, image_allowed: Tensor, max_words: int
    ) -> None:
        self.joint, self.image_length, self.max_words = joint, len(image_allowed), max_words
        ids = torch.arange(joint.size)
        self.words = joint.is_word(ids)
        self.codes_at = torch.zeros(self.image_length, joint.size, dtype=torch.bool)
        self.codes_at[:, joint.num_words : joint.end_of_text] = image_allowed.cpu()
        self.end_of_text, self.end_of_image = ids == joint.end_of_text, ids == joint.end_of_image
        none = torch.zeros(batch, dtype=torch.bool)
        self.in_text, self.in_image = none.clone(), none.clone()
        self.text_done, self.image_done = none.clone(), none.clone()
        self.count = torch.zeros(batch, dtype=torch.long)

    @property
    def finished(self) -> Tensor:
        """Rows whose caption and image are both closed."""
        return self.text_done & self.image_done

    def allowed(self) -> Tensor:
        """``[B, V]`` booleans: the tokens each row may draw next. A finished row may
        only repeat ``<end of image>``, as filler."""
        idle = ~self.in_text & ~self.in_image
        words = (idle & ~self.text_done) | (self.in_text & (self.count < self.max_words))
        codes = (idle & ~self.image_done) | (self.in_image & (self.count < self.image_length))
        end_text = self.in_text & (self.count >= 1)
        end_image = (self.in_image & (self.count == self.image_length)) | self.finished
        position = torch.where(self.in_image, self.count, 0).clamp(max=self.image_length - 1)
        return (
            words[:, None] & self.words
            | codes[:, None] & self.codes_at[position]
            | end_text[:, None] & self.end_of_text
            | end_image[:, None] & self.end_of_image
        )

    def update(self, tokens: Tensor) -> None:
        """Advance every row past its token ``tokens [B]`` (CPU or not)."""
        tokens = tokens.cpu()
        word, code = self.joint.is_word(tokens), self.joint.is_code(tokens)
        self.count = torch.where(word | code, self.count + 1, 0)
        self.in_text, self.in_image = word, code
        self.text_done |= tokens == self.joint.end_of_text
        self.image_done |= tokens == self.joint.end_of_image


class Multimodal(FrozenVQVAEModel):
    """A GPT over joint caption-and-image sequences of a frozen VQ-VAE's tokens (see the
    module docstring for the vocabulary, the sequences and the metrics).

    Batches are ``(images, labels, captions)`` as ``CaptionedMNISTDataModule`` yields
    them. The VQ-VAE is frozen and stored in this module's checkpoint, and each split's
    tokens are cached beside the VQ-VAE checkpoint, as for ``VQPrior``.

    Args:
        vqvae_checkpoint: checkpoint of the trained VQ-VAE; also where the token caches go.
        image_shape: (channels, height, width); linked from the data module, must be the
            VQ-VAE's (None: the VQ-VAE's).
        num_levels: values per subpixel; linked from the data module, must be the VQ-VAE's.
        width: embedding width.
        num_heads: attention heads.
        num_layers: transformer blocks.
        dropout: dropout on embeddings, attention and MLP outputs.
        learning_rate: peak Adam step size.
        warmup_steps: linear warm-up steps before the cosine decay.
        max_caption_words: longest caption sampling may write (at least the data's 6).
        vqvae_hparams: filled in from the VQ-VAE checkpoint; leave it None.
    """

    name = "multimodal"

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
        max_caption_words: int = 8,
        vqvae_hparams: dict | None = None,
    ) -> None:
        super().__init__(learning_rate)
        self.save_hyperparameters()
        if max_caption_words < MAX_CAPTION_WORDS:
            raise ValueError(
                f"max_caption_words must be at least {MAX_CAPTION_WORDS}, got {max_caption_words}"
            )
        self.attach_vqvae(vqvae_checkpoint, vqvae_hparams, image_shape, num_levels)
        self.words = WordVocabulary()
        self.joint = JointVocabulary(self.words.size, self.vqvae.vocab_size)
        self.image_length = math.prod(self.vqvae.token_shape)
        config = GPTConfig(
            vocab_size=self.joint.size,
            context_length=1 + (max_caption_words + 1) + (self.image_length + 1),
            width=width,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.gpt = GPT(config)

    def orders(self, batch_size: int) -> Tensor:
        """Which rows put the text first: a fair coin per row in training, even rows
        otherwise (deterministic evaluation)."""
        if self.training:
            return torch.rand(batch_size) < 0.5
        return torch.arange(batch_size) % 2 == 0

    def sequences(
        self, images: Tensor, captions: Tensor, text_first: Tensor
    ) -> tuple[Tensor, Tensor]:
        """GPT inputs and targets ``[B, T]`` of a batch (see ``assemble_sequences``)."""
        codes = self.tokens_of(images)
        inputs, targets = assemble_sequences(
            self.joint, captions.cpu(), codes.cpu(), text_first, self.gpt.bos
        )
        return inputs.to(self.device), targets.to(self.device)

    def token_nats(
        self, images: Tensor, captions: Tensor, text_first: Tensor
    ) -> tuple[Tensor, Tensor]:
        """NLL in nats of every target ``[B, T]`` of the sequences (0 at padding), and
        the mask of the real targets."""
        inputs, targets = self.sequences(images, captions, text_first)
        logits = self.gpt(inputs).float().transpose(1, 2)
        nats = F.cross_entropy(logits, targets, ignore_index=PAD, reduction="none")
        return nats, targets != PAD

    def log_prob(
        self, x: Tensor, cond: Tensor | None = None, text_first: Tensor | None = None
    ) -> Tensor:
        """Log-probability ``[B]`` in nats of the sequences of images ``x`` and their
        captions ``cond`` (``PAD``-padded word ids), text first unless ``text_first``
        says otherwise: ``log p(order, caption, image)`` of the VQ tokens, not of pixels."""
        if cond is None:
            raise ValueError("Multimodal.log_prob needs the captions as cond")
        if text_first is None:
            text_first = torch.ones(len(x), dtype=torch.bool)
        return -self.token_nats(x, cond, text_first)[0].sum(dim=1)

    def batch_nats(self, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """NLL of every real target of a batch, flattened, so that means weight every
        token alike; the orders are those ``orders`` gives."""
        images, _, captions = batch
        nats, real = self.token_nats(images, captions, self.orders(len(images)))
        return nats[real]

    def _log_nats(self, stage: str, nats: Tensor) -> None:
        """Accumulate and log ``{stage}/nats_per_token`` (the only evaluation figure)."""
        self.nats_per_token[stage].update(nats)
        self.log(f"{stage}/nats_per_token", self.nats_per_token[stage], prog_bar=True)

    @torch.no_grad()
    def continue_sequences(
        self,
        prompts: Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        greedy: bool = False,
    ) -> Tensor:
        """Complete prompts ``[B, t]`` (well-formed starts of sequences without
        ``<bos>``, all of one length; ``t`` may be 0) until every row has closed its
        caption and its image. Each step samples (options as in ``GPT.generate``) from
        the logits masked to what ``StructureMask`` allows, reading one new token
        through the KV cache. Returns ``[B, t + new]``; rows that finish early are
        padded with ``<end of image>``."""
        mask = StructureMask(
            self.joint, len(prompts), self.vqvae.allowed_tokens, self.hparams.max_caption_words
        )
        for column in prompts.T:
            mask.update(column)
        tokens = [prompts]
        with evaluating(self):
            cache = self.gpt.new_cache(len(prompts))
            logits = self.gpt(self.gpt.with_bos(prompts), cache)[:, -1]
            while True:
                masked = logits.masked_fill(~mask.allowed().to(logits.device), float("-inf"))
                token = next_token(masked, temperature, top_k, top_p, greedy, generator)
                mask.update(token)
                tokens.append(token[:, None])
                if bool(mask.finished.all()):
                    return torch.cat(tokens, dim=1)
                logits = self.gpt(token[:, None], cache)[:, -1]

    def complete(self, prompts: list[Tensor], **options) -> list[Tensor]:
        """``continue_sequences`` of prompts of different lengths, batched by length so
        that every prompt sits at the positions it has in training (no padding before
        it); the sequences come back in the prompts' order."""
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, prompt in enumerate(prompts):
            by_length[len(prompt)].append(index)
        done: dict[int, Tensor] = {}
        for indices in by_length.values():
            batch = torch.stack([prompts[i] for i in indices]).to(self.device)
            for index, row in zip(indices, self.continue_sequences(batch, **options), strict=True):
                done[index] = row
        return [done[index] for index in range(len(prompts))]

    def captions_of(self, sequences: list[Tensor] | Tensor) -> list[str]:
        """The caption of every well-formed sequence, as text."""
        return [self.words.decode(row[self.joint.is_word(row)].cpu()) for row in sequences]

    def images_of(self, sequences: list[Tensor] | Tensor) -> Tensor:
        """The VQ-VAE's decoding ``[B, C, H, W]`` of every well-formed sequence's image."""
        codes = [row[self.joint.is_code(row)] - self.joint.num_words for row in sequences]
        tokens = torch.stack(codes).view(len(codes), *self.vqvae.token_shape)
        return self.vqvae.decode(tokens.to(self.device))

    def caption_to_image(
        self, captions: list[str], generator: torch.Generator | None = None, **options
    ) -> Tensor:
        """One image ``[B, C, H, W]`` (levels ``0..K-1``) drawn for each caption."""
        prompts = [self.joint.text_tokens(self.words.encode(text)) for text in captions]
        return self.images_of(self.complete(prompts, generator=generator, **options))

    def image_to_caption(
        self, images: Tensor, generator: torch.Generator | None = None, **options
    ) -> list[str]:
        """One caption drawn for each integer image ``[B, C, H, W]``."""
        prompts = torch.stack([self.joint.image_tokens(image) for image in self.tokens_of(images)])
        return self.captions_of(self.continue_sequences(prompts, generator=generator, **options))

    def unconditional(
        self, num_samples: int, generator: torch.Generator | None = None, **options
    ) -> list[tuple[str, Tensor]]:
        """``num_samples`` pairs (caption, image ``[C, H, W]``) drawn jointly; the first
        token decides which of the two comes first."""
        empty = torch.zeros(num_samples, 0, dtype=torch.long, device=self.device)
        sequences = self.continue_sequences(empty, generator=generator, **options)
        return list(zip(self.captions_of(sequences), self.images_of(sequences), strict=True))

    def sample(
        self,
        num_samples: int,
        cond: list[str] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Images ``[num_samples, C, H, W]``: drawn for the captions ``cond`` when given
        (one each), else the images of unconditional samples."""
        if cond is not None:
            return self.caption_to_image(list(cond)[:num_samples], generator=generator)
        return torch.stack([image for _, image in self.unconditional(num_samples, generator)])

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.Adam(self.gpt.parameters(), lr=self.learning_rate)
        return warmup_cosine_schedule(self, optimizer, self.hparams.warmup_steps)
