"""What a character language model has learned, written as text at the end of ``fit``:
how likely it finds a few sentences, and a soft prompt found by gradient descent that
makes it say a target."""

from __future__ import annotations

import lightning as L

from genlab.analysis import format_inversion, invert_embeddings, sentence_log_prob
from genlab.analysis.inversion import check_fits
from genlab.callbacks.io import run_dir

DEFAULT_SENTENCES = (
    "To be, or not to be, that is the question.",
    "Be, to or not be to, question the is that.",
    "Ot eb, ro ton ot eb, taht si eht noitseuq.",
    "q ooos, bn  ituanbet.tht, tieTo  th eo esr",
)


class SentenceLogProbs(L.Callback):
    """At the end of ``fit``, scores each of ``sentences`` with ``sentence_log_prob``
    and writes ``sentence_log_probs.txt`` in the run folder: log-probability in nats,
    nats and bits per character, likeliest first. The defaults put a line of Hamlet beside
    its words shuffled, its words spelled backwards and its letters shuffled: a model
    that learned English words and word order ranks them in that order.

    Needs a model with ``check_fits_context``, ``token_log_probs`` and ``vocab``
    (CharGPT)."""

    def __init__(self, sentences: list[str] | tuple[str, ...] = DEFAULT_SENTENCES) -> None:
        super().__init__()
        if not sentences or not all(sentences):
            raise ValueError("SentenceLogProbs needs at least one sentence, none of them empty")
        self.sentences = list(sentences)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check the sentences before training, not after it."""
        for sentence in self.sentences:
            pl_module.check_fits_context(sentence, f"SentenceLogProbs: {sentence!r}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        scores = sorted(
            (sentence_log_prob(pl_module, sentence) for sentence in self.sentences),
            key=lambda score: -score.log_prob,
        )
        lines = [f"{'log p (nats)':>12} {'nats/char':>9} {'bits/char':>9}  sentence"]
        lines += [
            f"{s.log_prob:>12.2f} {s.nats_per_character:>9.4f} {s.bits_per_character:>9.4f}  "
            f"{s.text!r}"
            for s in scores
        ]
        path = run_dir(trainer) / "sentence_log_probs.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class EmbeddingInversion(L.Callback):
    """At the end of ``fit``, fits ``num_embeddings`` soft-prompt vectors with
    ``invert_embeddings`` so that the model continues them with ``target``, and writes
    the optimisation's history (loss, greedy continuation, nearest tokens every
    ``log_every`` steps) to ``embedding_inversion.txt`` in the run folder.

    Needs a CharGPT."""

    def __init__(
        self,
        target: str = "To be, or not to be",
        num_embeddings: int = 4,
        iterations: int = 200,
        learning_rate: float = 0.1,
        log_every: int = 50,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.target = target
        self.num_embeddings = num_embeddings
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.log_every = log_every
        self.seed = seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check the target before training, not after it."""
        check_fits(
            self.num_embeddings,
            len(pl_module.encode(self.target)),
            pl_module.gpt.config.context_length,
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        result = invert_embeddings(
            pl_module,
            self.target,
            num_embeddings=self.num_embeddings,
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            seed=self.seed,
            log_every=self.log_every,
        )
        path = run_dir(trainer) / "embedding_inversion.txt"
        path.write_text(format_inversion(result) + "\n", encoding="utf-8")
