"""Character-level text from any UTF-8 file, for GPT-style models.

The vocabulary is the set of characters of the training split, sorted; ids
``0..n-1`` are characters, ``n`` is ``<eos>`` and ``n + 1`` is ``<bos>`` (the GPT's own
start token, which the model never predicts). An example is a pair
``(inputs, targets)`` of ``[T]`` token ids: ``inputs`` starts with ``<bos>`` and
``targets`` is the next token at each position, ``IGNORE`` where a position is padding.

Two ways to cut examples:
* ``window``: the split is one stream of characters (``<eos>`` after the end of the
  file) and an example is any ``context_length`` consecutive characters. ``<bos>``
  then means "nothing seen yet": the first character of a window is predicted from no
  context, the last from ``context_length - 1`` characters. Training draws windows at
  every offset; validation and test read the split in back-to-back windows.
* ``document``: the file is a list of documents split at ``document_separator`` (for
  example one poem per blank-line-separated block); an example is ``<bos>``, the
  document, ``<eos>``, and a batch is padded to its longest document with the padding
  left out of the loss.

``path`` is a file, or the name of a well-known corpus (``tinyshakespeare``), which is
downloaded into ``root`` on first use and read from there afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from genlab.datamodules.in_memory import whole_batch_loader

IGNORE = -100  # target of a padded position; cross_entropy's default ignore_index
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
# What else lengthens a split that is too short for one window, besides a longer text.
LONGER_SPLIT = {"train": "", "val": ", a larger val_fraction", "test": ", a larger test_fraction"}


@dataclass(frozen=True)
class Corpus:
    """A public text file a user's machine may download."""

    url: str
    filename: str
    md5: str


CORPORA = {
    "tinyshakespeare": Corpus(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        filename="tinyshakespeare.txt",
        md5="6fb458f1232090904fb40fe944165e91",
    ),
}


@dataclass(frozen=True)
class CharVocabulary:
    """Characters to token ids and back; ``<eos>`` and ``<bos>`` follow the characters."""

    characters: str

    def __post_init__(self) -> None:
        if not self.characters:
            raise ValueError("a vocabulary needs at least one character, got an empty one")
        if len(set(self.characters)) != len(self.characters):
            raise ValueError(f"vocabulary characters repeat: {self.characters!r}")

    @classmethod
    def of_text(cls, text: str) -> CharVocabulary:
        """The sorted characters of ``text``."""
        return cls("".join(sorted(set(text))))

    @cached_property
    def ids(self) -> dict[str, int]:
        """Each character's token id, built once per vocabulary."""
        return {char: i for i, char in enumerate(self.characters)}

    @property
    def eos(self) -> int:
        return len(self.characters)

    @property
    def bos(self) -> int:
        return len(self.characters) + 1

    @property
    def size(self) -> int:
        """Number of tokens a model predicts: the characters and ``<eos>``."""
        return len(self.characters) + 1

    def encode(self, text: str, source: str = "text") -> Tensor:
        """Token ids ``[len(text)]``. A character outside the vocabulary stops with its
        line and column in ``source``."""
        try:
            return torch.tensor([self.ids[char] for char in text], dtype=torch.long)
        except KeyError as error:
            unknown = error.args[0]
            position = text.index(unknown)
            line = text.count("\n", 0, position) + 1
            column = position - (text.rfind("\n", 0, position) + 1) + 1
            raise ValueError(
                f"{source}: character {unknown!r} at line {line}, column {column} is not in "
                f"the vocabulary built from the training text ({len(self.characters)} "
                f"characters); pass a vocabulary that includes it"
            ) from None

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The characters of ``ids`` up to the first ``<eos>``; ``<bos>`` is skipped."""
        out = []
        for token in ids.tolist() if isinstance(ids, Tensor) else ids:
            if token == self.eos:
                break
            if token != self.bos:
                out.append(self.characters[token])
        return "".join(out)


def resolve_text_file(path: str, root: str, download: bool) -> Path:
    """The file behind ``path``: the file itself, or a known corpus under ``root``,
    downloaded there first when ``download`` allows it."""
    if path not in CORPORA:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(
                f"text file {path}: no such file (or name one of {sorted(CORPORA)})"
            )
        return file
    corpus = CORPORA[path]
    file = Path(root) / corpus.filename
    if not file.is_file():
        if not download:
            raise FileNotFoundError(f"{file}: not found and download is off ({path})")
        from torchvision.datasets.utils import download_url

        download_url(corpus.url, root, corpus.filename, corpus.md5)
    return file


def read_text(file: Path) -> str:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{file}: expected UTF-8 text ({error})") from None
    if not text:
        raise ValueError(f"{file}: expected text, the file is empty")
    return text


class Windows(Dataset):
    """Every run of ``length`` tokens of ``stream`` at multiples of ``stride``, as
    ``(<bos> + all but the last, all)``."""

    def __init__(self, stream: Tensor, length: int, stride: int, bos: int) -> None:
        self.stream = stream
        self.length = length
        self.stride = stride
        self.bos = torch.tensor([bos])

    def __len__(self) -> int:
        return max(0, (len(self.stream) - self.length) // self.stride + 1)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        window = self.stream[index * self.stride : index * self.stride + self.length]
        return torch.cat([self.bos, window[:-1]]), window

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """A whole batch ``[B, length]`` of windows, cut from the stream with one index."""
        starts = torch.as_tensor(indices, dtype=torch.long) * self.stride
        windows = self.stream[starts[:, None] + torch.arange(self.length)]
        inputs = torch.cat([self.bos.expand(len(windows), 1), windows[:, :-1]], dim=1)
        return inputs, windows


class Documents(Dataset):
    """One ``(<bos> + document, document + <eos>)`` pair per document."""

    def __init__(self, documents: list[Tensor], vocabulary: CharVocabulary) -> None:
        self.documents = documents
        self.bos = torch.tensor([vocabulary.bos])
        self.eos = torch.tensor([vocabulary.eos])

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        document = self.documents[index]
        return torch.cat([self.bos, document]), torch.cat([document, self.eos])

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """A batch padded to its longest document, see ``pad_batch``."""
        return pad_batch([self[index] for index in indices], int(self.eos))


def split_in_order(parts: str | list[str], val_fraction: float, test_fraction: float) -> dict:
    """Train, validation and test parts of a text or a list of documents, in file
    order: the last ``test_fraction`` is test, the ``val_fraction`` before it validation."""
    num_test = round(test_fraction * len(parts))
    num_val = round(val_fraction * len(parts))
    train_end = len(parts) - num_val - num_test
    return {
        "train": parts[:train_end],
        "val": parts[train_end : train_end + num_val],
        "test": parts[train_end + num_val :],
    }


def check_no_split_is_empty(
    parts: dict, file: Path, val_fraction: float, test_fraction: float, unit: str
) -> None:
    """Stop when a split came out empty because the file has too few characters or
    documents (``unit``) for the fractions: a fit would run without validation, and a
    test would quietly read the validation split."""
    total = sum(len(part) for part in parts.values())
    if not parts["train"]:
        raise ValueError(
            f"{file}: val_fraction {val_fraction} and test_fraction {test_fraction} leave "
            f"none of {total} {unit} for training; use a longer text or smaller fractions"
        )
    for split, fraction in (("val", val_fraction), ("test", test_fraction)):
        if fraction > 0 and not parts[split]:
            raise ValueError(
                f"{file}: {split}_fraction {fraction} of {total} {unit} leaves the "
                f"{SPLIT_NAMES[split]} split empty; use a longer text or a larger "
                f"{split}_fraction"
            )


def pad_batch(examples: list[tuple[Tensor, Tensor]], pad: int) -> tuple[Tensor, Tensor]:
    """Stack examples of different lengths: inputs padded with ``pad``, targets with
    ``IGNORE``."""
    longest = max(len(inputs) for inputs, _ in examples)
    inputs = torch.full((len(examples), longest), pad, dtype=torch.long)
    targets = torch.full((len(examples), longest), IGNORE, dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        inputs[row, : len(x)] = x
        targets[row, : len(y)] = y
    return inputs, targets


class TextDataModule(L.LightningDataModule):
    """Character-level examples from a UTF-8 file (see the module docstring).

    Args:
        path: a UTF-8 text file, or ``tinyshakespeare`` (downloaded into ``root``).
        example: ``window`` (contiguous windows) or ``document`` (one per document).
        context_length: tokens a model reads at once, ``<bos>`` included; linked to the
            model. In ``document`` mode every document must fit with its ``<eos>``.
        document_separator: what separates documents in ``document`` mode.
        vocabulary: the characters, in id order; by default those of the training split.
            Saved with the checkpoint and linked to the model, which decodes with it.
        val_fraction, test_fraction: the last parts of the file (by characters for
            windows, by documents for documents); with ``test_fraction`` 0 the test
            stage reads the validation split.
        batch_size: examples per batch.
        root, download: where a named corpus lives and whether it may be fetched.
        predict_samples: how many texts ``predict`` asks the model for.
    """

    def __init__(
        self,
        path: str = "tinyshakespeare",
        example: Literal["window", "document"] = "window",
        context_length: int = 64,
        document_separator: str = "\n\n",
        vocabulary: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.0,
        batch_size: int = 12,
        root: str = "data",
        download: bool = True,
        predict_samples: int = 10,
    ) -> None:
        super().__init__()
        if example not in ("window", "document"):
            raise ValueError(f"example must be 'window' or 'document', got {example!r}")
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2 (<bos> + 1), got {context_length}")
        if not (val_fraction > 0 and test_fraction >= 0 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"need 0 < val_fraction, 0 <= test_fraction and val_fraction + test_fraction "
                f"< 1, got val_fraction={val_fraction}, test_fraction={test_fraction}"
            )
        self.file = resolve_text_file(path, root, download)
        text = read_text(self.file)
        parts: str | list[str] = text
        if example == "document":
            parts = [document for document in text.split(document_separator) if document.strip()]
        self.parts = split_in_order(parts, val_fraction, test_fraction)
        unit = "documents" if example == "document" else "characters"
        check_no_split_is_empty(self.parts, self.file, val_fraction, test_fraction, unit)
        train_text = "".join(self.parts["train"])
        self.vocab = CharVocabulary(vocabulary or CharVocabulary.of_text(train_text).characters)
        vocabulary = self.vocab.characters
        self.save_hyperparameters()
        self.datasets: dict[str, Dataset] = {}

    @property
    def name(self) -> str:
        return self.file.stem

    @property
    def context_length(self) -> int:
        """Positions of an example, ``<bos>`` included (linked to the model)."""
        return self.hparams.context_length

    @property
    def vocabulary(self) -> str:
        """The characters in id order (linked to the model)."""
        return self.vocab.characters

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        splits = ("train", "val", "test") if self.parts["test"] else ("train", "val")
        for split in splits:
            self.datasets[split] = self._dataset(split)
        self.datasets.setdefault("test", self.datasets["val"])

    def _dataset(self, split: str) -> Dataset:
        source = f"{self.file} ({split} split)"
        part = self.parts[split]
        length = self.hparams.context_length
        if self.hparams.example == "document":
            documents = [self.vocab.encode(document, source) for document in part]
            for number, document in enumerate(documents):
                if len(document) + 1 > length:
                    raise ValueError(
                        f"{source}: document {number} has {len(document)} characters, but "
                        f"context_length {length} holds at most {length - 1} with <bos>; "
                        f"raise context_length or use example: window"
                    )
            return Documents(documents, self.vocab)
        stream = self.vocab.encode(part, source)
        ends_the_file = split == "test" or (split == "val" and not self.parts["test"])
        if ends_the_file:
            stream = torch.cat([stream, torch.tensor([self.vocab.eos])])
        if len(stream) < length:
            raise ValueError(self.too_short_for_a_window(split, ends_the_file))
        stride = 1 if split == "train" else length
        return Windows(stream, length, stride, self.vocab.bos)

    def too_short_for_a_window(self, split: str, ends_with_eos: bool) -> str:
        """Why a split yields no window: without this, training stops inside torch's
        sampler and a short validation or test split is skipped without a word."""
        length = self.hparams.context_length
        needed = f"{length - 1} characters and <eos>" if ends_with_eos else f"{length} characters"
        total = sum(len(part) for part in self.parts.values())
        return (
            f"{self.file} ({total} characters): the {SPLIT_NAMES[split]} split has "
            f"{len(self.parts[split])} characters, fewer than one window of context_length "
            f"{length} needs ({needed}); use a longer text{LONGER_SPLIT[split]} or a smaller "
            f"context_length"
        )

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return whole_batch_loader(self.datasets[split], self, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Batches of sample indices 0..predict_samples-1 (1-D LongTensors)."""
        return DataLoader(
            torch.arange(self.hparams.predict_samples), batch_size=self.hparams.batch_size
        )
