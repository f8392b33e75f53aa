"""VQ-VAE tokens, a token prior and a multimodal GPT on coloured MNIST: what the tokens
keep, whether prior samples are digits, and whether multimodal samples show and say
what they should.

Data: ``../shared/datasets/mnist_10k.npz`` (9,000 training digits, a tenth of them for
validation, and 1,000 test digits), binarized and painted with a random foreground and
background colour of 4 levels per channel, each with its caption ("dark red seven on
light blue"). The course trains on all 60,000 digits, so its figures are a reference,
not a target.

Each model is built and trained as its config says (``configs/vqvae/colored_mnist.yaml``,
``configs/vq_prior/colored_mnist.yaml``, ``configs/multimodal/captioned_mnist.yaml``:
model arguments, data arguments, epochs, gradient clipping), on the array file above.

1. VQ-VAE tokenizer: test reconstruction nats/dim, the fraction of subpixels that
   ``decode(encode(x))`` gets right, and the codebook perplexity and fraction of codes
   in use over the whole test split.
2. Token prior: test nats per token (the course reports 3.083 with its own tokenizer,
   whose tokens are not these: not comparable), and 100 samples read by the digit judge.
3. Multimodal GPT over caption and image tokens: test nats per token, then grounding,
   read by judges built here:
   - a colour-blind digit judge: a small CNN trained on the strokes of the training
     digits (every pixel not of the background colour), shifted and rotated a little at
     every draw, so it reads a digit in any colours;
   - a colour reader: the most common colour of an image is its background, the most
     common other one its foreground, named as captions name them.
   Each test caption gets a drawn image, scored by whether the judges read the asked
   digit and colours; each test image gets a drawn caption (sampled at temperature 1,
   and greedy), scored against the true digit and colour names; unconditional pairs are
   scored by whether caption and image agree. The judges' own accuracy on real test
   images and on their VQ-VAE reconstructions bounds what a sample can reach. While the
   multimodal GPT trains, both directions' digit accuracy is measured every few epochs
   (``grounding.curve``), so a shortfall shows whether it still rises.

Pictures beside the JSON: test images over their reconstructions, 10x10 prior samples,
images drawn for test captions (one row per digit, captions underneath) and captions
drawn for test images.

    python benchmarks/vq_multimodal.py
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402
import yaml  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, SHARED_DATASETS, write_result  # noqa: E402

from genlab.callbacks.multimodal_grid import captioned_grid  # noqa: E402
from genlab.datamodules import CaptionedMNISTDataModule  # noqa: E402
from genlab.datamodules.images import ImageDataModule  # noqa: E402
from genlab.datamodules.multimodal import (  # noqa: E402
    CaptionParts,
    color_name,
    parse_caption,
    shift_and_rotate,
)
from genlab.lightning_modules import VQVAE, Multimodal, VQPrior  # noqa: E402
from genlab.lightning_modules.vqvae import color_numbers, two_colors  # noqa: E402
from genlab.nn.modes import evaluating  # noqa: E402
from genlab.nn.vq import code_usage_stats  # noqa: E402

COURSE_PRIOR_NATS_PER_TOKEN = 3.083
NUM_LEVELS = 4
NAME = "vq_multimodal_colored_mnist"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIDENT = 0.9  # a judge's probability of its digit that counts as "reads a digit"
JUDGE_SHIFT, JUDGE_ROTATION = 2.0, 12.0  # pixels, degrees: how far the judge's digits move
TOKENIZER_NOTE = (
    "not comparable with the course's figure: its tokenizer codes 7x7 patches of the "
    "coloured image, ours two exact colour tokens and codes of the colour-free stroke"
)


def config(path: str) -> dict:
    """The sections of a config file under ``configs/``."""
    return yaml.safe_load((CONFIGS / path).read_text())


def instantiate(section: dict, **overrides) -> object:
    """The object a config section names (``class_path``, ``init_args``)."""
    module, _, name = section["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**{**section.get("init_args", {}), **overrides})


def data_of_config(sections: dict) -> ImageDataModule:
    """The config's data module, reading ``mnist_10k.npz``; set up."""
    path = SHARED_DATASETS / "mnist_10k.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: this benchmark reads MNIST from there")
    data = instantiate(sections["data"], path=str(path), download=False)
    data.setup()
    return data


def trainer(sections: dict, epochs: int | None, callbacks: list[L.Callback]) -> L.Trainer:
    """A quiet trainer with the config's gradient clipping and epochs (unless ``epochs``)."""
    return L.Trainer(
        max_epochs=epochs or sections["trainer"]["max_epochs"],
        gradient_clip_val=sections["trainer"].get("gradient_clip_val"),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


class ValidationCurve(L.Callback):
    """The validation figures after every epoch, to see whether a run still improves or
    has begun to overfit."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        figures = {k: float(v) for k, v in metrics.items() if k.startswith("val/")}
        self.epochs.append({"epoch": trainer.current_epoch + 1, **figures})
        print(self.epochs[-1], flush=True)


def fit(
    model: L.LightningModule,
    data: ImageDataModule,
    sections: dict,
    epochs: int | None,
    extra: list[L.Callback] = (),
) -> tuple[L.Trainer, dict]:
    """Train as the config says (for ``epochs`` if given); the trainer, and the seconds
    training took (without the time ``extra`` callbacks report in ``seconds``) with the
    validation curve."""
    curve = ValidationCurve()
    run = trainer(sections, epochs, [curve, *extra])
    started = time.perf_counter()
    run.fit(model, datamodule=data)
    seconds = time.perf_counter() - started - sum(c.seconds for c in extra)
    record = {
        "config": sections["model"]["init_args"],
        "batch_size": data.hparams.batch_size,
        "epochs": run.max_epochs,
        "train_seconds": seconds,
        "validation": curve.epochs,
    }
    return run, record


def tokenizer_figures(vqvae: VQVAE, images: Tensor) -> dict:
    with evaluating(vqvae), torch.no_grad():
        recon_nats = torch.cat([vqvae.losses(chunk)[0] for chunk in images.split(250)])
        grids = vqvae.code_grid(vqvae.encoder_input(images))
        reconstructions = vqvae.reconstruct(images)
    perplexity, used = code_usage_stats(grids, vqvae.num_codes)
    return {
        "tokens": f"{vqvae.hparams.colors} colours, {math.prod(vqvae.token_shape)} tokens",
        "test_recon_nats_per_dim": float(recon_nats.mean()),
        "test_recon_bits_per_dim": float(recon_nats.mean()) / math.log(2),
        "test_subpixels_right": float((reconstructions == images).float().mean()),
        "test_codebook_perplexity": float(perplexity),
        "test_codes_used": float(used),
        "num_codes": vqvae.num_codes,
    }


def strokes_of(images: Tensor) -> Tensor:
    """0/1 float strokes ``[B, 1, H, W]`` of integer images: every pixel not of the
    image's most common colour."""
    numbers = color_numbers(images.long(), NUM_LEVELS)
    background = two_colors(numbers, NUM_LEVELS ** images.shape[1])[0]
    return (numbers != background[:, None, None]).float()[:, None]


class DigitJudge(nn.Module):
    """Two conv-pool stages and two linear layers over an image's stroke, so that it
    reads a digit whatever its colours."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, 10),
        )

    def forward(self, strokes: Tensor) -> Tensor:
        return self.net(strokes)


def moved(strokes: Tensor, generator: torch.Generator) -> Tensor:
    """0/1 strokes ``[B, 1, H, W]`` shifted by up to ``JUDGE_SHIFT`` pixels along each
    axis and turned by up to ``JUDGE_ROTATION`` degrees, a random amount per image."""
    count = len(strokes)
    shifts = (torch.rand(count, 2, generator=generator) * 2 - 1) * JUDGE_SHIFT
    angles = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(JUDGE_ROTATION)
    return shift_and_rotate(strokes.bool(), shifts, angles).float()


def train_judge(images: Tensor, labels: Tensor, epochs: int, seed: int) -> DigitJudge:
    """The digit judge, trained on the strokes of ``images`` with a one-cycle schedule."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    strokes = strokes_of(images)
    judge = DigitJudge()
    optimizer = torch.optim.Adam(judge.parameters())
    steps = epochs * math.ceil(len(strokes) / 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    for _ in range(epochs):
        for batch in torch.randperm(len(strokes), generator=generator).split(128):
            loss = F.cross_entropy(judge(moved(strokes[batch], generator)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return judge.eval()


@torch.no_grad()
def digit_probabilities(judge: DigitJudge, images: Tensor) -> Tensor:
    """The judge's probabilities ``[B, 10]`` of each image's digit."""
    return torch.cat([judge(strokes_of(chunk)).softmax(1) for chunk in images.split(500)])


def read_colors(image: Tensor) -> tuple[str, str]:
    """(foreground, background) colour names of an integer image ``[3, H, W]``: the most
    common colour is the background, the most common other colour the foreground."""
    colors, counts = image.flatten(1).T.unique(dim=0, return_counts=True)
    order = counts.argsort(descending=True)
    background = colors[order[0]]
    foreground = colors[order[1]] if len(order) > 1 else background
    return color_name(foreground, NUM_LEVELS), color_name(background, NUM_LEVELS)


def read_images(judge: DigitJudge, images: Tensor) -> list[CaptionParts]:
    """What the judges read in each image: its digit and its two colour names."""
    digits = digit_probabilities(judge, images).argmax(1).tolist()
    return [CaptionParts(d, *read_colors(image)) for d, image in zip(digits, images, strict=True)]


def confident_digits(judge: DigitJudge, images: Tensor) -> dict:
    """How often the judge gives an image's likeliest digit probability ``CONFIDENT`` or
    more, and how those confident readings spread over the ten digits."""
    probabilities = digit_probabilities(judge, images)
    confidence, digits = probabilities.max(1)
    sure = confidence >= CONFIDENT
    return {
        "confident_digit_rate": float(sure.float().mean()),
        "confident_digits_by_class": torch.bincount(digits[sure], minlength=10).tolist(),
        "count": len(images),
    }


def scores(said: list[CaptionParts | None], truths: list[CaptionParts]) -> dict:
    """How often what was said (read in an image, or drawn as a caption; None: a caption
    that does not parse, wrong on every count) matches the truth."""

    def rate(right: Callable[[CaptionParts, CaptionParts], bool]) -> float:
        hits = [s is not None and right(s, t) for s, t in zip(said, truths, strict=True)]
        return sum(hits) / len(hits)

    return {
        "digit": rate(lambda s, t: s.digit == t.digit),
        "foreground_color": rate(lambda s, t: s.foreground_name == t.foreground_name),
        "background_color": rate(lambda s, t: s.background_name == t.background_name),
        "all_three": rate(lambda s, t: s == t),
        "count": len(truths),
    }


def caption_scores(captions: list[str], truths: list[CaptionParts]) -> dict:
    """``scores`` of drawn captions, and the fraction of them that parse."""
    said = [parsed_or_none(text) for text in captions]
    well_formed = sum(parts is not None for parts in said) / len(said)
    return {**scores(said, truths), "well_formed": well_formed}


def parsed_or_none(text: str) -> CaptionParts | None:
    try:
        return parse_caption(text)
    except ValueError:
        return None


def agreement(judge: DigitJudge, pairs: list[tuple[str, Tensor]]) -> dict:
    """How often an unconditional pair's image shows what its own caption says (over the
    pairs whose caption parses; ``well_formed`` is their fraction)."""
    said = [parsed_or_none(text) for text, _ in pairs]
    parsed = [i for i, parts in enumerate(said) if parts is not None]
    images = torch.stack([pairs[i][1] for i in parsed])
    result = scores(read_images(judge, images), [said[i] for i in parsed])
    return {**result, "well_formed": len(parsed) / len(pairs)}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TestSplit:
    """The test images with their captions as text and what the captions say."""

    def __init__(self, data: CaptionedMNISTDataModule) -> None:
        self.images = data.test_set.images.long()
        self.captions = [data.vocabulary.decode(ids) for ids in data.test_set.captions]
        self.truths = [parse_caption(text) for text in self.captions]


class GroundingCurve(L.Callback):
    """Every ``every`` epochs and after the last, the digit accuracy of images drawn for
    the test captions and of captions drawn (temperature 1) for the test images; the
    seconds it takes are kept apart from training time."""

    def __init__(self, judge: DigitJudge, test: TestSplit, every: int) -> None:
        self.judge, self.test, self.every = judge, test, every
        self.points: list[dict] = []
        self.seconds = 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        started = time.perf_counter()
        drawn = pl_module.caption_to_image(self.test.captions, generator=seeded(1))
        said = pl_module.image_to_caption(self.test.images, generator=seeded(2))
        point = {
            "epoch": epoch,
            "caption_to_image_digit": scores(read_images(self.judge, drawn), self.test.truths)[
                "digit"
            ],
            "image_to_caption_digit": caption_scores(said, self.test.truths)["digit"],
        }
        self.points.append(point)
        self.seconds += time.perf_counter() - started
        print("grounding curve", point, flush=True)


def caption_rows(test: TestSplit, per_digit: int) -> list[int]:
    """Indices of the first ``per_digit`` test captions of each digit, digit by digit."""
    rows = []
    for digit in range(10):
        rows += [i for i, t in enumerate(test.truths) if t.digit == digit][:per_digit]
    return rows


def save_pictures(
    vqvae: VQVAE, prior_samples: Tensor, test: TestSplit, drawn: Tensor, sampled: list[str]
) -> list[str]:
    """The PNGs beside the JSON: test images over their reconstructions, 10x10 prior
    samples, images drawn for test captions (one row per digit) and captions drawn for
    test images."""
    with evaluating(vqvae):
        pairs = [test.images[:10], vqvae.reconstruct(test.images[:10])]
    pictures = {
        "reconstructions": torch.cat(pairs),
        "prior_samples": prior_samples,
    }
    paths = []
    for picture, images in pictures.items():
        paths.append(RESULTS / f"{NAME}_{picture}.png")
        save_image(images.float() / (NUM_LEVELS - 1), paths[-1], nrow=10, pad_value=1)
    rows = caption_rows(test, 6)
    grids = {
        "caption_to_image": (drawn[rows], [test.captions[i] for i in rows], 6),
        "image_to_caption": (test.images[:24], sampled[:24], 6),
    }
    for mode, (shown, texts, nrow) in grids.items():
        paths.append(RESULTS / f"{NAME}_{mode}.png")
        captioned_grid(shown, texts, NUM_LEVELS, nrow).savefig(paths[-1], dpi=80)
    return [path.name for path in paths]


def timed(function: Callable, *args, **kwargs) -> tuple[object, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def train_tokenizer(
    epochs: int | None, seed: int, workdir: Path, test: TestSplit
) -> tuple[VQVAE, Path, dict]:
    """Train the VQ-VAE of its config, save its checkpoint in ``workdir``, and measure it
    on the test split."""
    L.seed_everything(seed)
    sections = config("vqvae/colored_mnist.yaml")
    data = data_of_config(sections)
    vqvae = instantiate(sections["model"], image_shape=data.image_shape, num_levels=NUM_LEVELS)
    run, record = fit(vqvae, data, sections, epochs)
    checkpoint = workdir / "vqvae.ckpt"
    run.save_checkpoint(checkpoint)
    record.update(tokenizer_figures(vqvae, test.images))
    print("tokenizer", {k: v for k, v in record.items() if k != "validation"}, flush=True)
    return vqvae, checkpoint, record


def train_token_model(
    config_path: str,
    checkpoint: Path,
    epochs: int | None,
    seed: int,
    extra: list[L.Callback] = (),
) -> tuple[VQPrior | Multimodal, dict]:
    """Train the GPT of a config over the frozen VQ-VAE's tokens and measure its test
    nats per token."""
    L.seed_everything(seed)
    sections = config(config_path)
    data = data_of_config(sections)
    model = instantiate(sections["model"], vqvae_checkpoint=str(checkpoint))
    run, record = fit(model, data, sections, epochs, extra)
    nats = run.test(model, datamodule=data, verbose=False)[0]["test/nats_per_token"]
    record.update(
        test_nats_per_token=nats,
        course_reference_nats_per_token=COURSE_PRIOR_NATS_PER_TOKEN,
        course_reference_note=TOKENIZER_NOTE,
    )
    print(type(model).__name__, {k: v for k, v in record.items() if k != "validation"})
    return model, record


def prior_figures(prior: VQPrior, judge: DigitJudge, test: TestSplit) -> tuple[dict, Tensor]:
    """Test nats of each kind of token, and 100 samples read by the judge (also 1,000,
    for a closer rate); the 100 samples for the picture."""
    with evaluating(prior), torch.no_grad():
        tokens = prior.tokens_of(test.images)
        log_probs = F.log_softmax(prior(tokens).float(), dim=-1)
        nats = -log_probs.gather(-1, tokens.flatten(1)[..., None])[..., 0].mean(0)
    samples = prior.sample(100, generator=seeded(0))
    figures = {"test_nats_per_position": nats.tolist(), **confident_digits(judge, samples)}
    more = confident_digits(judge, prior.sample(1000, generator=seeded(10)))
    figures["confident_digit_rate_of_1000"] = more["confident_digit_rate"]
    return figures, samples


def grounding(multimodal: Multimodal, vqvae: VQVAE, judge: DigitJudge, test: TestSplit) -> dict:
    """The judges' scores of multimodal samples drawn for the test split (and of the test
    images and their reconstructions, as ceilings), and the samples for the pictures."""
    with evaluating(vqvae):
        reconstructions = vqvae.reconstruct(test.images)
    drawn, image_seconds = timed(multimodal.caption_to_image, test.captions, generator=seeded(1))
    sampled, caption_seconds = timed(multimodal.image_to_caption, test.images, generator=seeded(2))
    greedy = multimodal.image_to_caption(test.images, greedy=True)
    pairs = multimodal.unconditional(len(test.images), generator=seeded(3))
    return {
        "judges_on_test_images": {
            **scores(read_images(judge, test.images), test.truths),
            **confident_digits(judge, test.images),
        },
        "judges_on_test_reconstructions": {
            **scores(read_images(judge, reconstructions), test.truths),
            **confident_digits(judge, reconstructions),
        },
        "caption_to_image": scores(read_images(judge, drawn), test.truths),
        "image_to_caption_sampled": caption_scores(sampled, test.truths),
        "image_to_caption_greedy": caption_scores(greedy, test.truths),
        "unconditional_agreement": agreement(judge, pairs),
        "caption_to_image_seconds": image_seconds,
        "image_to_caption_seconds": caption_seconds,
        "samples": {"drawn": drawn, "sampled": sampled},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for model in ("vqvae", "prior", "multimodal"):
        parser.add_argument(
            f"--{model}-epochs", type=int, help="epochs instead of the config's (trials)"
        )
    parser.add_argument("--judge-epochs", type=int, default=30)
    parser.add_argument(
        "--curve-every", type=int, default=5, help="epochs between grounding curve points"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", help="where the VQ-VAE checkpoint and token caches go (default: temporary)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run(args, Path(args.workdir or scratch))


def run(args: argparse.Namespace, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    captioned = data_of_config(config("multimodal/captioned_mnist.yaml"))
    test = TestSplit(captioned)
    train = captioned.train_set
    (judge, judge_seconds) = timed(
        train_judge, train.images.long(), train.labels, args.judge_epochs, args.seed
    )
    vqvae, checkpoint, tokenizer = train_tokenizer(args.vqvae_epochs, args.seed, workdir, test)
    prior, prior_record = train_token_model(
        "vq_prior/colored_mnist.yaml", checkpoint, args.prior_epochs, args.seed
    )
    prior_samples, prior_pictures = prior_figures(prior, judge, test)
    prior_record["test_nats_per_position"] = prior_samples.pop("test_nats_per_position")
    curve = GroundingCurve(judge, test, args.curve_every)
    multimodal, multimodal_record = train_token_model(
        "multimodal/captioned_mnist.yaml", checkpoint, args.multimodal_epochs, args.seed, [curve]
    )
    scored = grounding(multimodal, vqvae, judge, test)
    samples = scored.pop("samples")
    scored.update(prior_samples=prior_samples, curve=curve.points)
    print("grounding", scored, flush=True)
    seconds = [record["train_seconds"] for record in (tokenizer, prior_record, multimodal_record)]
    pictures = save_pictures(vqvae, prior_pictures, test, samples["drawn"], samples["sampled"])
    path = write_result(
        NAME,
        {
            "data": "mnist_10k.npz coloured, 4 levels a channel; 8,100 train, 900 val, 1,000 test",
            "seed": args.seed,
            "recolor": captioned.recolor,
            "judge": {
                "epochs": args.judge_epochs,
                "train_seconds": judge_seconds,
                "trained_on": "strokes of the 8,100 training digits, shifted and rotated",
            },
            "vqvae": tokenizer,
            "prior": prior_record,
            "multimodal": multimodal_record,
            "train_seconds_all_three": sum(seconds),
            "grounding": scored,
            "pictures": pictures,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
