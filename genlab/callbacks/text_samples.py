"""Text samples of a language model during training."""

from __future__ import annotations

import lightning as L
import torch

from genlab.callbacks.io import run_dir, tensorboard_of
from genlab.callbacks.periodic import EveryNValidations
from genlab.callbacks.sample_writer import format_texts


class TextSamples(EveryNValidations):
    """After every ``every_n_validations``-th validation and at the end of ``fit``,
    draws ``num_samples`` texts of up to ``max_new_tokens`` characters after ``prompt``
    and logs them to TensorBoard (``samples``, text tab) and appends them, headed by the
    step, to ``samples.txt`` in the run folder. A fixed ``seed`` makes samples of
    different steps comparable.

    Needs a model with ``sample_text(num_samples, prompt, generator=..., ...)`` (CharGPT).
    """

    def __init__(
        self,
        num_samples: int = 4,
        max_new_tokens: int = 300,
        prompt: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        every_n_validations: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_validations)
        self.num_samples = num_samples
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt
        self.temperature = temperature
        self.top_k = top_k
        self.seed = seed

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        texts = pl_module.sample_text(
            self.num_samples,
            self.prompt,
            generator=torch.Generator().manual_seed(self.seed),
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
        )
        block = format_texts(texts)
        writer = tensorboard_of(trainer)
        if writer is not None:
            indented = "\n".join("    " + line for line in block.splitlines())
            writer.add_text("samples", indented, global_step=trainer.global_step)
        with open(run_dir(trainer) / "samples.txt", "a", encoding="utf-8") as file:
            file.write(f"===== step {trainer.global_step} =====\n{block}")
