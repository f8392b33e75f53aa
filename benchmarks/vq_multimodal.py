"""VQ-VAE tokens, a token prior and a multimodal GPT on coloured MNIST: what the tokens
keep, how well a prior models them, and whether multimodal samples show and say what
they should.

Data: ``../shared/datasets/mnist_10k.npz`` (9,000 training digits, a tenth of them for
validation, and 1,000 test digits), binarized and painted with a random foreground and
background colour of 4 levels per channel, each with its caption ("dark red seven on
light blue"). The course trains on all 60,000 digits, so its figures are a reference,
not a target.

1. VQ-VAE tokenizer: test reconstruction nats/dim, the fraction of subpixels that
   ``decode(encode(x))`` gets right, and the codebook perplexity and fraction of codes
   in use over the whole test split.
2. Token prior (a GPT over the 7x7 code grid): test nats per token (the course reports
   3.083 with its own tokenizer).
3. Multimodal GPT over caption and image tokens: test nats per token, then grounding,
   read by judges built here:
   - a small CNN digit classifier trained on the training images;
   - a colour reader: the most common colour of an image is its background, the most
     common other one its foreground, named as captions name them.
   Each test caption gets a drawn image, scored by whether the judges read the asked
   digit and colours; each test image gets a drawn caption (sampled, and greedy), scored
   against the true digit and colour names; unconditional pairs are scored by whether
   caption and image agree. The judges' own accuracy on real test images and on their
   VQ-VAE reconstructions bounds what a sample can reach.

The prior and the multimodal GPT train on digits repainted with new colours at every
draw (``recolor``); ``--no-recolor`` keeps coloured MNIST's fixed colours and writes
``vq_multimodal_colored_mnist_fixed_colors.json`` instead.

    python benchmarks/vq_multimodal.py
"""

from __future__ import annotations

import argparse
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
from torch import Tensor, nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, SHARED_DATASETS, write_result  # noqa: E402

from genlab.callbacks.multimodal_grid import captioned_grid  # noqa: E402
from genlab.datamodules import CaptionedMNISTDataModule  # noqa: E402
from genlab.datamodules.multimodal import CaptionParts, color_name, parse_caption  # noqa: E402
from genlab.lightning_modules import VQVAE, Multimodal, VQPrior  # noqa: E402
from genlab.nn.modes import evaluating  # noqa: E402
from genlab.nn.vq import code_usage_stats  # noqa: E402

COURSE_PRIOR_NATS_PER_TOKEN = 3.083
NUM_LEVELS = 4
NAME = "vq_multimodal_colored_mnist"


def captioned_mnist(batch_size: int, recolor: bool = False) -> CaptionedMNISTDataModule:
    path = SHARED_DATASETS / "mnist_10k.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: this benchmark reads MNIST from there")
    data = CaptionedMNISTDataModule(
        path=str(path),
        num_levels=NUM_LEVELS,
        recolor=recolor,
        val_fraction=0.1,
        batch_size=batch_size,
        seed=0,
    )
    data.setup()
    return data


def trainer(epochs: int, curve: L.Callback) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[curve],
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
    model: L.LightningModule, data: CaptionedMNISTDataModule, epochs: int
) -> tuple[L.Trainer, dict]:
    """Train for ``epochs``; the trainer, and the seconds it took with the validation curve."""
    curve = ValidationCurve()
    run = trainer(epochs, curve)
    started = time.perf_counter()
    run.fit(model, datamodule=data)
    seconds = time.perf_counter() - started
    return run, {"epochs": epochs, "train_seconds": seconds, "validation": curve.epochs}


def tokenizer_figures(vqvae: VQVAE, data: CaptionedMNISTDataModule) -> dict:
    images = data.test_set.images.long()
    with evaluating(vqvae), torch.no_grad():
        recon_nats = torch.cat([vqvae.losses(chunk)[0] for chunk in images.split(250)])
        tokens = vqvae.encode(images)
        reconstructions = vqvae.decode(tokens)
    perplexity, used = code_usage_stats(tokens, vqvae.num_codes)
    return {
        "test_recon_nats_per_dim": float(recon_nats.mean()),
        "test_recon_bits_per_dim": float(recon_nats.mean()) / math.log(2),
        "test_subpixels_right": float((reconstructions == images).float().mean()),
        "test_codebook_perplexity": float(perplexity),
        "test_codes_used": float(used),
        "num_codes": vqvae.num_codes,
    }


class DigitClassifier(nn.Module):
    """Two conv-pool stages and two linear layers over images scaled to [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images.float() / (NUM_LEVELS - 1))


def train_classifier(images: Tensor, labels: Tensor, epochs: int, seed: int) -> DigitClassifier:
    torch.manual_seed(seed)
    classifier = DigitClassifier()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(images)).split(128):
            loss = F.cross_entropy(classifier(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return classifier.eval()


@torch.no_grad()
def read_digits(classifier: DigitClassifier, images: Tensor) -> Tensor:
    return torch.cat([classifier(chunk).argmax(1) for chunk in images.split(500)])


def read_colors(image: Tensor) -> tuple[str, str]:
    """(foreground, background) colour names of an integer image ``[3, H, W]``: the most
    common colour is the background, the most common other colour the foreground."""
    colors, counts = image.flatten(1).T.unique(dim=0, return_counts=True)
    order = counts.argsort(descending=True)
    background = colors[order[0]]
    foreground = colors[order[1]] if len(order) > 1 else background
    return color_name(foreground, NUM_LEVELS), color_name(background, NUM_LEVELS)


def read_images(classifier: DigitClassifier, images: Tensor) -> list[CaptionParts]:
    """What the judges read in each image: its digit and its two colour names."""
    digits = read_digits(classifier, images).tolist()
    return [CaptionParts(d, *read_colors(image)) for d, image in zip(digits, images, strict=True)]


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


def agreement(classifier: DigitClassifier, pairs: list[tuple[str, Tensor]]) -> dict:
    """How often an unconditional pair's image shows what its own caption says (over the
    pairs whose caption parses; ``well_formed`` is their fraction)."""
    said = [parsed_or_none(text) for text, _ in pairs]
    parsed = [i for i, parts in enumerate(said) if parts is not None]
    images = torch.stack([pairs[i][1] for i in parsed])
    result = scores(read_images(classifier, images), [said[i] for i in parsed])
    return {**result, "well_formed": len(parsed) / len(pairs)}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def save_pictures(
    name: str,
    vqvae: VQVAE,
    prior: VQPrior,
    images: Tensor,
    captions: list[str],
    drawn: Tensor,
    sampled: list[str],
) -> list[str]:
    """Test images over their reconstructions over prior samples, and captioned grids of
    the images drawn for the first test captions and the captions drawn for the first
    test images, as PNGs in ``results/``."""
    with evaluating(vqvae):
        rows = [images[:10], vqvae.reconstruct(images[:10])]
    rows.append(prior.sample(20, generator=seeded(0)))
    paths = [RESULTS / f"{name}_tokens.png"]
    save_image(torch.cat(rows).float() / (NUM_LEVELS - 1), paths[0], nrow=10, pad_value=1)
    for mode, shown, texts in [
        ("caption_to_image", drawn[:9], captions[:9]),
        ("image_to_caption", images[:9], sampled[:9]),
    ]:
        paths.append(RESULTS / f"{name}_{mode}.png")
        captioned_grid(shown, texts, NUM_LEVELS, 3).savefig(paths[-1], dpi=80)
    return [path.name for path in paths]


def timed(function: Callable, *args, **kwargs) -> tuple[object, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vqvae-epochs", type=int, default=30)
    parser.add_argument("--prior-epochs", type=int, default=30)
    parser.add_argument("--multimodal-epochs", type=int, default=30)
    parser.add_argument("--classifier-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--recolor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the prior and the multimodal GPT on digits repainted at every draw",
    )
    parser.add_argument(
        "--workdir", help="where the VQ-VAE checkpoint and token caches go (default: temporary)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run(args, Path(args.workdir or scratch))


VQVAE_CONFIG = dict(num_codes=512, code_dim=64, hidden_channels=64, ema=True, learning_rate=1e-3)
VQVAE_BATCH_SIZE = 32
GPT_CONFIG = dict(width=128, num_heads=4, num_layers=2, dropout=0.1, warmup_steps=100)
GPT_BATCH_SIZE = 128


def train_tokenizer(epochs: int, seed: int, workdir: Path) -> tuple[VQVAE, Path, dict]:
    """Train the VQ-VAE, save its checkpoint in ``workdir``, and measure it on the test split."""
    L.seed_everything(seed)
    data = captioned_mnist(VQVAE_BATCH_SIZE)
    vqvae = VQVAE(data.image_shape, NUM_LEVELS, **VQVAE_CONFIG)
    run, training = fit(vqvae, data, epochs)
    checkpoint = workdir / "vqvae.ckpt"
    run.save_checkpoint(checkpoint)
    record = {
        "config": VQVAE_CONFIG,
        "batch_size": VQVAE_BATCH_SIZE,
        **tokenizer_figures(vqvae, data),
        **training,
    }
    print("tokenizer", record, flush=True)
    return vqvae, checkpoint, record


def train_token_model(
    model_class: type[VQPrior] | type[Multimodal],
    checkpoint: Path,
    data: CaptionedMNISTDataModule,
    epochs: int,
    seed: int,
) -> tuple[VQPrior | Multimodal, dict]:
    """Train a GPT over the frozen VQ-VAE's tokens and measure its test nats per token."""
    L.seed_everything(seed)
    model = model_class(str(checkpoint), **GPT_CONFIG)
    run, training = fit(model, data, epochs)
    nats = run.test(model, datamodule=data, verbose=False)[0]["test/nats_per_token"]
    record = {"config": GPT_CONFIG, "batch_size": GPT_BATCH_SIZE, "test_nats_per_token": nats}
    print(model_class.__name__, record, flush=True)
    return model, {**record, **training}


def grounding(
    multimodal: Multimodal,
    vqvae: VQVAE,
    data: CaptionedMNISTDataModule,
    classifier_epochs: int,
    seed: int,
) -> tuple[dict, dict]:
    """The judges' scores of multimodal samples drawn for the test split (and of the test
    images and their reconstructions, as ceilings), and the samples for the pictures."""
    train, test = data.train_set, data.test_set
    classifier = train_classifier(train.images.long(), train.labels, classifier_epochs, seed)
    images = test.images.long()
    captions = [data.vocabulary.decode(ids) for ids in test.captions]
    truths = [parse_caption(text) for text in captions]
    with evaluating(vqvae):
        reconstructions = vqvae.reconstruct(images)
    drawn, image_seconds = timed(multimodal.caption_to_image, captions, generator=seeded(1))
    sampled, caption_seconds = timed(multimodal.image_to_caption, images, generator=seeded(2))
    greedy = multimodal.image_to_caption(images, greedy=True)
    pairs = multimodal.unconditional(len(images), generator=seeded(3))
    scored = {
        "judges_on_test_images": scores(read_images(classifier, images), truths),
        "judges_on_test_reconstructions": scores(read_images(classifier, reconstructions), truths),
        "caption_to_image": scores(read_images(classifier, drawn), truths),
        "image_to_caption_sampled": caption_scores(sampled, truths),
        "image_to_caption_greedy": caption_scores(greedy, truths),
        "unconditional_agreement": agreement(classifier, pairs),
        "caption_to_image_seconds": image_seconds,
        "image_to_caption_seconds": caption_seconds,
    }
    print("grounding", scored, flush=True)
    samples = {"images": images, "captions": captions, "drawn": drawn, "sampled": sampled}
    return scored, samples


def run(args: argparse.Namespace, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    vqvae, checkpoint, tokenizer = train_tokenizer(args.vqvae_epochs, args.seed, workdir)
    data = captioned_mnist(GPT_BATCH_SIZE, recolor=args.recolor)
    prior, prior_record = train_token_model(VQPrior, checkpoint, data, args.prior_epochs, args.seed)
    prior_record["course_reference_nats_per_token"] = COURSE_PRIOR_NATS_PER_TOKEN
    multimodal, multimodal_record = train_token_model(
        Multimodal, checkpoint, data, args.multimodal_epochs, args.seed
    )
    scored, samples = grounding(multimodal, vqvae, data, args.classifier_epochs, args.seed)
    name = NAME if args.recolor else f"{NAME}_fixed_colors"
    pictures = save_pictures(name, vqvae, prior, **samples)
    path = write_result(
        name,
        {
            "data": "mnist_10k.npz coloured, 4 levels a channel; 8,100 train, 900 val, 1,000 test",
            "seed": args.seed,
            "recolor": args.recolor,
            "vqvae": tokenizer,
            "prior": prior_record,
            "multimodal": multimodal_record,
            "classifier_epochs": args.classifier_epochs,
            "grounding": scored,
            "pictures": pictures,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
