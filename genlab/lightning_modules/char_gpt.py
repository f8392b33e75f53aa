"""Character-level GPT (Radford et al., 2018/2019; the character setting of Karpathy's
char-rnn and nanoGPT): the next character of a text given the characters before it.

The model carries its vocabulary (linked from the text data module and saved with the
checkpoint), so a reloaded model encodes prompts, scores sentences and decodes samples
on its own. Likelihoods are per character, ``<eos>`` counted as one; padding of
document batches is left out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from genlab.datamodules.text import IGNORE, CharVocabulary
from genlab.lightning_modules.base import LikelihoodModel, warmup_cosine_schedule
from genlab.nn.modes import evaluating
from genlab.nn.transformer import GPT, GPTConfig


class CharGPT(LikelihoodModel):
    """A GPT over the characters of ``vocabulary`` plus ``<eos>``.

    Args:
        vocabulary: the characters in id order; linked from the data module.
        context_length: positions read at once, ``<bos>`` included; linked from the data.
        width, num_heads, num_layers, dropout: GPT sizes (nanoGPT's small character
            model: 128, 4, 4, 0.0).
        learning_rate: peak AdamW step size, reached after ``warmup_steps``, then a
            cosine decay to ``min_learning_rate`` at the last step.
        weight_decay: AdamW decay of weight matrices and embeddings (not biases or norms).
        betas: AdamW moment decays.
    """

    name = "char_gpt"

    def __init__(
        self,
        vocabulary: str = "\n abcdefghijklmnopqrstuvwxyz",
        context_length: int = 64,
        width: int = 128,
        num_heads: int = 4,
        num_layers: int = 4,
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        min_learning_rate: float = 1e-4,
        warmup_steps: int = 100,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.99),
    ) -> None:
        super().__init__(learning_rate)
        self.save_hyperparameters()
        self.vocab = CharVocabulary(vocabulary)
        config = GPTConfig(
            vocab_size=self.vocab.size,
            context_length=context_length,
            width=width,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.gpt = GPT(config)

    def encode(self, text: str) -> Tensor:
        """Token ids ``[len(text)]`` on the model's device."""
        return self.vocab.encode(text, "prompt").to(self.device)

    def check_fits_context(self, text: str, what: str) -> None:
        """Stop with a clear message unless ``text`` (named ``what`` in it) is made of the
        vocabulary and fits the context after ``<bos>``."""
        self.encode(text)
        context = self.gpt.config.context_length
        if len(text) + 1 > context:
            raise ValueError(
                f"{what} has {len(text)} characters, but the context holds {context - 1} "
                f"after <bos>; shorten it"
            )

    def decode(self, tokens: Tensor) -> str:
        """The text of ``tokens`` ``[T]`` up to the first ``<eos>``."""
        return self.vocab.decode(tokens)

    def forward(self, inputs: Tensor) -> Tensor:
        """Next-token logits ``[B, T, vocab]`` of inputs ``[B, T]`` that start with
        ``<bos>``."""
        return self.gpt(inputs)

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """``[B, T]``: log-probability of each token of ``tokens`` ``[B, T]`` (no
        ``<bos>``) given ``<bos>`` and the tokens before it, in nats."""
        self._check_tokens(tokens)
        logits = self.gpt(self.gpt.with_bos(tokens)[:, :-1])
        return F.log_softmax(logits.float(), dim=-1).gather(2, tokens[..., None])[..., 0]

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Log-probability of each sequence ``[B, T]`` read from its start, in nats."""
        return self.token_log_probs(x).sum(dim=1)

    def _check_tokens(self, tokens: Tensor) -> None:
        if tokens.dtype != torch.long or tokens.dim() != 2:
            raise ValueError(
                f"expected token ids [B, T] as int64, got {tokens.dtype} {list(tokens.shape)}"
            )
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab.size):
            raise ValueError(
                f"expected token ids in 0..{self.vocab.size - 1}, got "
                f"{tokens.min().item()}..{tokens.max().item()}"
            )

    def batch_nats(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Negative log-likelihood of every non-padding target of a batch
        ``(inputs, targets)``, flattened: means over it weight every character alike."""
        inputs, targets = batch
        nats = F.cross_entropy(
            self(inputs).float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
        )
        return nats[targets != IGNORE]

    def sample(
        self,
        num_samples: int,
        cond: str | None = None,
        *,
        generator: torch.Generator | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        greedy: bool = False,
        use_cache: bool = True,
        on_step: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Token ids ``[B, len(prompt) + new]``: the prompt ``cond`` (text, empty by
        default) continued by up to ``max_new_tokens`` characters (by default one
        context's worth), each row stopping at ``<eos>`` (and padded with it after).
        Sampling options as in ``GPT.generate``; the cache does not change the result."""
        prompt = self.encode(cond or "")[None].expand(num_samples, -1)
        if max_new_tokens is None:
            max_new_tokens = self.hparams.context_length - 1
        with evaluating(self):
            return self.gpt.generate(
                prompt,
                max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                greedy=greedy,
                use_cache=use_cache,
                generator=generator,
                on_step=on_step,
                stop_token=self.vocab.eos,
            )

    def sample_text(self, num_samples: int, prompt: str = "", **options) -> list[str]:
        """``sample`` decoded: each text starts with the prompt and ends before ``<eos>``."""
        return [self.decode(row) for row in self.sample(num_samples, prompt, **options)]

    def predict_step(self, batch: Tensor, batch_idx: int) -> list[str]:
        """One text per requested index; the first index seeds the generator."""
        generator = torch.Generator().manual_seed(int(batch[0]))
        return self.sample_text(len(batch), generator=generator)

    def configure_optimizers(self) -> dict:
        decayed = [p for p in self.parameters() if p.dim() >= 2]
        others = [p for p in self.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decayed, "weight_decay": self.hparams.weight_decay},
                {"params": others, "weight_decay": 0.0},
            ],
            lr=self.learning_rate,
            betas=tuple(self.hparams.betas),
        )
        floor = self.hparams.min_learning_rate / self.learning_rate
        return warmup_cosine_schedule(self, optimizer, self.hparams.warmup_steps, floor)
