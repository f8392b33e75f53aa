"""Coloured MNIST digits paired with captions such as "dark red seven on light blue".

Colour names: `color_name` names an RGB colour of K levels per channel (any K >= 2) with
integer arithmetic only, so every machine gives the same name. With c = max - min (chroma)
and s = max + min (twice the HLS lightness), both in units of one level, and M = K - 1:

* achromatic when 4c < M (chroma under a quarter of the range, so K = 2 and K = 4 call
  only exact grays achromatic): the nearest of black, dark gray, gray, light gray, white
  to the lightness s / 2M, i.e. index round(2s / M), halves rounding up;
* otherwise the hue family, the nearest of red, yellow, green, cyan, blue, magenta
  (HSV hue rounded to a multiple of 60 degrees, halves rounding up), preceded by "dark"
  when the lightness s / 2M is below 0.4 and by "light" when it is above 0.6.

K = 2 gives the eight names black, white, red, yellow, green, cyan, blue, magenta; K = 4
spreads its 64 colours over 22 of the 23 names (plain "gray" needs K = 3 or K >= 5).
Several codes share a name, so the two colours of an image (always different codes) can
share one: the caption then does not tell foreground from background. The colour pair
is left as drawn (changing it would change the images of coloured MNIST); with K = 4 and
seed 0, 3.5% of the 60000 training images and 3.3% of the 10000 test images get such a
caption.

Captions: "<foreground name> <digit word> on <background name>", 4 to 6 words of a closed
set of 22 (`CAPTION_WORDS`), the same for every K. `parse_caption` inverts `caption`.

Word ids: `WordVocabulary` numbers `CAPTION_WORDS` in their fixed order, 0..21. It holds
no special sequence tokens: the multimodal model appends its own ids after the word ids
and the image's VQ codes (`<bos>`, `<end of text>`, `<end of image>`) and builds one
sequence per example, `<bos>` then text and image in either order, each closed by its
end token. Batches pad every caption to `MAX_CAPTION_WORDS` with `PAD` (-100, negative so
it never passes for a word, and cross-entropy's default ignore index); the model reads
the real length as the number of ids that are not `PAD`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset, get_worker_info

from genlab.datamodules.images import (
    InMemoryImages,
    SeedStream,
    binarize,
    check_num_levels,
    color_code_to_rgb,
    draw_color_pairs,
)
from genlab.datamodules.mnist import MNISTDataModule, RawSplit
from genlab.datamodules.text import IGNORE

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
HUES = ("red", "yellow", "green", "cyan", "blue", "magenta")
GRAYS = ("black", "dark gray", "gray", "light gray", "white")
LIGHTNESS_WORDS = ("dark", "light")
COLOR_NAMES = GRAYS + tuple(
    f"{lightness} {hue}".strip() for hue in HUES for lightness in ("dark", "", "light")
)
SEPARATOR = "on"
CAPTION_WORDS = DIGIT_WORDS + (SEPARATOR,) + LIGHTNESS_WORDS + ("black", "gray", "white") + HUES
MAX_CAPTION_WORDS = 6
PAD = IGNORE


def color_name(rgb: Sequence[int] | np.ndarray, num_levels: int) -> str:
    """The name of an RGB colour with channels in 0..K-1 (rule in the module docstring)."""
    check_num_levels(num_levels)
    red, green, blue = (int(channel) for channel in rgb)
    if not all(0 <= channel < num_levels for channel in (red, green, blue)):
        raise ValueError(f"colour {tuple(rgb)} has channels outside 0..{num_levels - 1}")
    top = num_levels - 1
    chroma = max(red, green, blue) - min(red, green, blue)
    lightness = max(red, green, blue) + min(red, green, blue)
    if 4 * chroma < top:
        return GRAYS[(4 * lightness + top) // (2 * top)]
    hue = HUES[(2 * hue_sixths(red, green, blue) + chroma) // (2 * chroma) % len(HUES)]
    if 5 * lightness < 4 * top:
        return f"dark {hue}"
    if 5 * lightness > 6 * top:
        return f"light {hue}"
    return hue


def hue_sixths(red: int, green: int, blue: int) -> int:
    """HSV hue in sixths of a turn, times the chroma (an integer, possibly negative)."""
    top, chroma = max(red, green, blue), max(red, green, blue) - min(red, green, blue)
    if top == red:
        return green - blue
    if top == green:
        return 2 * chroma + blue - red
    return 4 * chroma + red - green


class CaptionParts(NamedTuple):
    """What a caption says: the digit and the two colour names."""

    digit: int
    foreground_name: str
    background_name: str


def caption(
    label: int,
    foreground_rgb: Sequence[int] | np.ndarray,
    background_rgb: Sequence[int] | np.ndarray,
    num_levels: int,
) -> str:
    """The caption of a digit painted in these colours, e.g. "dark red seven on light blue"."""
    if not 0 <= int(label) <= 9:
        raise ValueError(f"captions need a digit label 0..9, got {label}")
    foreground = color_name(foreground_rgb, num_levels)
    background = color_name(background_rgb, num_levels)
    return f"{foreground} {DIGIT_WORDS[int(label)]} {SEPARATOR} {background}"


def parse_caption(text: str) -> CaptionParts:
    """Read back what `caption` wrote; a malformed caption raises ValueError saying why."""
    words = text.split()
    if words.count(SEPARATOR) != 1:
        raise ValueError(
            f"malformed caption {text!r}: expected '<colour> <digit> on <colour>' "
            f"with exactly one {SEPARATOR!r}"
        )
    split = words.index(SEPARATOR)
    if split < 2 or words[split - 1] not in DIGIT_WORDS:
        raise ValueError(
            f"malformed caption {text!r}: expected a colour name and a digit word "
            f"({', '.join(DIGIT_WORDS)}) before {SEPARATOR!r}"
        )
    foreground, background = " ".join(words[: split - 1]), " ".join(words[split + 1 :])
    for role, name in (("foreground", foreground), ("background", background)):
        if name not in COLOR_NAMES:
            raise ValueError(
                f"malformed caption {text!r}: {role} colour {name!r} is not one of "
                f"{', '.join(COLOR_NAMES)}"
            )
    return CaptionParts(DIGIT_WORDS.index(words[split - 1]), foreground, background)


@dataclass(frozen=True)
class WordVocabulary:
    """Caption words to ids 0..size-1 and back, in the fixed order of `CAPTION_WORDS`.

    The words come from the closed set of captions, not from data, so the ids are the same
    on every machine and for every K. Special sequence tokens are the model's (see the
    module docstring); `decode` skips `PAD`.
    """

    words: tuple[str, ...] = CAPTION_WORDS

    def __post_init__(self) -> None:
        if not self.words or len(set(self.words)) != len(self.words):
            raise ValueError(f"vocabulary words must be distinct and not empty: {self.words}")
        if any(not word or len(word.split()) != 1 for word in self.words):
            raise ValueError(f"vocabulary words must be single words: {self.words}")

    @property
    def size(self) -> int:
        """Number of word ids."""
        return len(self.words)

    def encode(self, text: str) -> Tensor:
        """Word ids [number of words] of a whitespace-separated text."""
        index = {word: i for i, word in enumerate(self.words)}
        unknown = [word for word in text.split() if word not in index]
        if unknown:
            raise ValueError(
                f"word {unknown[0]!r} of {text!r} is not in the caption vocabulary "
                f"({', '.join(self.words)})"
            )
        return torch.tensor([index[word] for word in text.split()], dtype=torch.long)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The words of `ids` joined by spaces, `PAD` left out."""
        tokens = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        words = []
        for token in tokens:
            if token == PAD:
                continue
            if not 0 <= token < self.size:
                raise ValueError(f"id {token} is not a word id (0..{self.size - 1}) or PAD")
            words.append(self.words[token])
        return " ".join(words)

    def encode_padded(self, texts: Sequence[str]) -> Tensor:
        """Word ids [len(texts), MAX_CAPTION_WORDS] of captions, padded with `PAD`."""
        ids = torch.full((len(texts), MAX_CAPTION_WORDS), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            encoded = self.encode(text)
            if len(encoded) > MAX_CAPTION_WORDS:
                raise ValueError(f"{text!r} has more than {MAX_CAPTION_WORDS} words")
            ids[row, : len(encoded)] = encoded
        return ids


@cache
def color_name_ids(num_levels: int, vocabulary: WordVocabulary) -> Tensor:
    """Word ids ``[K^3, 2]`` of the name of every colour code (``r K^2 + g K + b``): its
    one or two words, ``PAD`` after a one-word name. Computed once per K and vocabulary."""
    names = [
        color_name(rgb, num_levels)
        for rgb in color_code_to_rgb(np.arange(num_levels**3), num_levels)
    ]
    ids = torch.full((len(names), 2), PAD, dtype=torch.long)
    for row, name in enumerate(names):
        encoded = vocabulary.encode(name)
        ids[row, : len(encoded)] = encoded
    return ids


def caption_ids(
    labels: Tensor,
    foreground_rgb: np.ndarray,
    background_rgb: np.ndarray,
    num_levels: int,
    vocabulary: WordVocabulary,
) -> Tensor:
    """Word ids ``[N, MAX_CAPTION_WORDS]``, padded with ``PAD``, of the captions of digits
    ``labels [N]`` painted in these colours (RGB ``[N, 3]``): what ``encode_padded`` gives
    for each ``caption``, assembled by table lookups instead of text, one batch at once."""
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"captions need digit labels 0..9, got {labels.min()}..{labels.max()}")
    names = color_name_ids(num_levels, vocabulary)
    place_values = np.array([num_levels**2, num_levels, 1])
    foreground = names[torch.from_numpy(np.asarray(foreground_rgb) @ place_values)]
    background = names[torch.from_numpy(np.asarray(background_rgb) @ place_values)]
    digits = vocabulary.encode(" ".join(DIGIT_WORDS))[labels.long()]
    separator = vocabulary.encode(SEPARATOR).expand(len(labels))
    words = torch.cat([foreground, digits[:, None], separator[:, None], background], dim=1)
    left_aligned = words.gather(1, torch.argsort((words == PAD).int(), dim=1, stable=True))
    return F.pad(left_aligned, (0, MAX_CAPTION_WORDS - words.shape[1]), value=PAD)


class CaptionedImages(InMemoryImages):
    """Labelled images with a caption each: word ids long [N, MAX_CAPTION_WORDS], and
    optionally the digit masks (bool [N, 1, H, W], True on the stroke) they were painted
    from, which recolouring needs."""

    def __init__(
        self, images: Tensor, labels: Tensor, captions: Tensor, strokes: Tensor | None = None
    ) -> None:
        super().__init__(images, labels)
        if captions.dtype != torch.long or captions.shape[0] != len(images):
            raise ValueError(
                f"captions must be long [{len(images)}, L], got {captions.dtype} {captions.shape}"
            )
        if strokes is not None and strokes.shape != (len(images), 1, *images.shape[2:]):
            raise ValueError(f"strokes must be [N, 1, H, W] masks, got {tuple(strokes.shape)}")
        self.captions = captions
        self.strokes = strokes

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.images[index].long(), self.labels[index], self.captions[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        batch = torch.as_tensor(indices, dtype=torch.long)
        return self.images[batch].long(), self.labels[batch], self.captions[batch]

    def select(self, indices: np.ndarray) -> CaptionedImages:
        batch = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        strokes = None if self.strokes is None else self.strokes[batch]
        return CaptionedImages(
            self.images[batch], self.labels[batch], self.captions[batch], strokes
        )


def shift_and_rotate(strokes: Tensor, shifts: Tensor, angles: Tensor) -> Tensor:
    """Boolean strokes ``[B, 1, H, W]`` moved by ``shifts [B, 2]`` pixels (right, down)
    and turned by ``angles [B]`` radians about the image centre: resampled bilinearly and
    kept where at least half on. What leaves the image is lost; what enters is off."""
    _, _, height, width = strokes.shape
    cos, sin = angles.cos(), angles.sin()
    # affine_grid maps each output position, in [-1, 1] coordinates, to where it reads
    x_from = torch.stack([cos, -sin, -2 * shifts[:, 0] / width], dim=1)
    y_from = torch.stack([sin, cos, -2 * shifts[:, 1] / height], dim=1)
    grid = F.affine_grid(torch.stack([x_from, y_from], 1), list(strokes.shape), align_corners=False)
    return F.grid_sample(strokes.float(), grid, align_corners=False) >= 0.5


class RecoloredCaptions(Dataset):
    """The digits of a `CaptionedImages` (with `strokes`), painted with a fresh random
    colour pair and captioned anew every time a batch is drawn; with `max_shift` or
    `max_rotation`, each digit is also moved by up to `max_shift` pixels along each axis
    and turned by up to `max_rotation` degrees (uniformly at random, anew at each draw).

    Coloured MNIST gives almost every training digit its own colour pair, so a model
    of colour-entangled tokens sees each digit shape in one colouring only; drawing new
    colours per batch shows it every shape in many. Colours of the k-th batch a process
    draws come from `[seed, TRAIN_RECOLORS, worker, k]` (and the rank, under DDP), so
    runs with the same seed, shuffling, workers and processes see the same colours; the
    moves come from a child of that seed sequence. `images`, `labels` and `captions` are
    those of the fixed colouring, for whoever reads the split as a whole.
    """

    def __init__(
        self,
        base: CaptionedImages,
        num_levels: int,
        seed: int,
        vocabulary: WordVocabulary,
        max_shift: float = 0.0,
        max_rotation: float = 0.0,
    ) -> None:
        if base.strokes is None:
            raise ValueError("recolouring needs the digit masks (CaptionedImages.strokes)")
        self.base, self.num_levels, self.seed, self.vocabulary = base, num_levels, seed, vocabulary
        self.max_shift, self.max_rotation = max_shift, max_rotation
        self.images, self.labels, self.captions = base.images, base.labels, base.captions
        self.batches_drawn = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        images, labels, captions = self.__getitems__([index])
        return images[0], labels[0], captions[0]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        batch = torch.as_tensor(indices, dtype=torch.long)
        seed = self.next_seed()
        background, foreground = draw_color_pairs(self.num_levels, seed, np.arange(len(batch)))
        strokes = self.moved(self.base.strokes[batch], seed)
        images = torch.where(
            strokes,
            torch.from_numpy(foreground)[:, :, None, None],
            torch.from_numpy(background)[:, :, None, None],
        )
        labels = self.base.labels[batch]
        captions = caption_ids(labels, foreground, background, self.num_levels, self.vocabulary)
        return images.long(), labels, captions

    def moved(self, strokes: Tensor, seed: list[int]) -> Tensor:
        """The strokes of a batch shifted and turned at random (see the class docstring),
        or as they are when no move is asked for."""
        if not (self.max_shift or self.max_rotation):
            return strokes
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        shifts = rng.uniform(-self.max_shift, self.max_shift, (len(strokes), 2))
        angles = np.radians(rng.uniform(-self.max_rotation, self.max_rotation, len(strokes)))
        return shift_and_rotate(
            strokes, torch.from_numpy(shifts).float(), torch.from_numpy(angles).float()
        )

    def next_seed(self) -> list[int]:
        """The colour seed of the next batch of this process (worker 0: the main one).
        Under DDP, every rank but 0 adds its rank, so that the processes paint their
        shares of a global batch with different colours."""
        worker = get_worker_info()
        worker_id = 0 if worker is None else worker.id + 1
        self.batches_drawn += 1
        seed = [self.seed, int(SeedStream.TRAIN_RECOLORS), worker_id, self.batches_drawn]
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        return [*seed, rank] if rank else seed


class CaptionedMNISTDataModule(MNISTDataModule):
    """Coloured MNIST (see `MNISTDataModule`, always `colored`) with a caption per digit.

    Batches are `(images long [B,3,28,28] in 0..K-1, labels long [B], captions long
    [B, MAX_CAPTION_WORDS])`, captions being `vocabulary` word ids padded with `PAD`. The
    colours a caption names are those that painted its image: the same `draw_color_pairs`
    call, with the same seed and dataset indices, as the painting. Every image needs a
    digit label, so array files must carry `train_labels` and `test_labels`.

    Args:
        root, download, path, levels_in_file: Where the digits come from and how an
            array file stores them, as for `MNISTDataModule`.
        num_levels: Levels per colour channel, K (K^3 colours).
        recolor: Paint the training digits with new random colours (and caption them
            anew) every time a batch is drawn, see `RecoloredCaptions`; validation and
            test keep their fixed colours.
        max_shift, max_rotation: With `recolor`, also move each training digit by up to
            `max_shift` pixels along each axis and turn it by up to `max_rotation`
            degrees at every draw (0: not at all); validation and test stay as they are.
        **kwargs: `ImageDataModule` arguments (batch_size, val_fraction, seed, ...).
    """

    def __init__(
        self,
        root: str = "data",
        download: bool = True,
        path: str | None = None,
        num_levels: int = 4,
        recolor: bool = False,
        levels_in_file: int | None = None,
        max_shift: float = 0.0,
        max_rotation: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(
            root=root,
            download=download,
            path=path,
            num_levels=num_levels,
            colored=True,
            levels_in_file=levels_in_file,
            **kwargs,
        )
        if (max_shift or max_rotation) and not recolor:
            raise ValueError(
                "max_shift and max_rotation move the digits as they are repainted: "
                "they need recolor: true"
            )
        if max_shift < 0 or max_rotation < 0:
            raise ValueError(
                f"max_shift and max_rotation must be at least 0, got {max_shift}, {max_rotation}"
            )
        self.recolor = recolor
        self.max_shift, self.max_rotation = max_shift, max_rotation
        self._vocabulary = WordVocabulary()

    @property
    def vocabulary(self) -> WordVocabulary:
        """The caption words and their ids."""
        return self._vocabulary

    @property
    def name(self) -> str:
        """`captioned_mnist`, with `_<K>levels` appended when K is not 4."""
        levels = self.num_levels
        return "captioned_mnist" if levels == 4 else f"captioned_mnist_{levels}levels"

    def transform_split(self, raw: RawSplit, color_stream: SeedStream) -> CaptionedImages:
        """Paint the split as `MNISTDataModule` does and caption each image's colours."""
        source = self.path or f"torchvision MNIST under {self.root}"
        if raw.labels.min() < 0 or raw.labels.max() > 9:
            raise ValueError(
                f"{source}: captions need a digit label 0..9 for every image, got labels "
                f"from {raw.labels.min()} to {raw.labels.max()} (-1: the file has none)"
            )
        painted = super().transform_split(raw, color_stream)
        color_seed = [self.hparams.seed, int(color_stream)]  # MNISTDataModule's colour seed
        indices = np.arange(len(raw.images))
        background, foreground = draw_color_pairs(self.num_levels, color_seed, indices)
        captions = caption_ids(
            painted.labels, foreground, background, self.num_levels, self._vocabulary
        )
        strokes = torch.from_numpy(binarize(raw.images)).permute(0, 3, 1, 2).bool()
        return CaptionedImages(painted.images, painted.labels, captions, strokes)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits; with `recolor`, the training split repaints (and moves) every
        batch."""
        super().setup(stage)
        if self.recolor and not isinstance(self.train_set, RecoloredCaptions):
            self.train_set = RecoloredCaptions(
                self.train_set,
                self.num_levels,
                self.hparams.seed,
                self._vocabulary,
                self.max_shift,
                self.max_rotation,
            )

    def state_dict(self) -> dict[str, int]:
        """The recolouring's count of painted batches, kept in checkpoints so that a
        resumed fit paints the batches the uninterrupted fit would have (batches that
        loader workers paint are counted in the workers, and not kept)."""
        if isinstance(self.train_set, RecoloredCaptions):
            return {"batches_drawn": self.train_set.batches_drawn}
        return {}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if isinstance(self.train_set, RecoloredCaptions) and "batches_drawn" in state_dict:
            self.train_set.batches_drawn = state_dict["batches_drawn"]
