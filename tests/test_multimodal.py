"""Multimodal GPT over captions and VQ tokens: sequence assembly and padding, samples
that are well formed by masking alone (code grids, and global colours then stroke codes),
the conditioning layout, a fit and its reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sampling_checks import record_step_logits

from genlab.cli import run_cli
from genlab.datamodules.multimodal import PAD, WordVocabulary
from genlab.lightning_modules import Multimodal
from genlab.lightning_modules.multimodal import JointVocabulary, assemble_sequences

REPO = Path(__file__).resolve().parents[1]
TINY_GPT = dict(width=16, num_heads=2, num_layers=1)
CAPTIONS = ["red seven on blue", "dark red one on white", "light blue two on dark gray"]


def untrained(ckpt: Path) -> Multimodal:
    """An untrained tiny model: any structure in its samples comes from the masks."""
    torch.manual_seed(0)
    return Multimodal(str(ckpt), **TINY_GPT).eval()


def segments(sequence: torch.Tensor, joint: JointVocabulary) -> list[tuple[list[int], int]]:
    """The two (tokens, end token) parts of a sampled sequence; only filler after them."""
    tokens, parts = sequence.tolist(), []
    for _ in range(2):
        end = next(i for i, t in enumerate(tokens) if t in (joint.end_of_text, joint.end_of_image))
        parts.append((tokens[:end], tokens[end]))
        tokens = tokens[end + 1 :]
    assert all(t == joint.end_of_image for t in tokens), "only <end of image> filler after"
    return parts


def assert_well_formed(
    sequence: torch.Tensor, joint: JointVocabulary, max_words: int, image_allowed: torch.Tensor
) -> None:
    """One caption (1..max_words words, <end of text>) and one image (its tokens, each
    an id its position may hold: 49 codes, or 2 colours then 49 codes, <end of image>),
    in either order."""
    parts = segments(sequence, joint)
    assert {end for _, end in parts} == {joint.end_of_text, joint.end_of_image}
    for tokens, end in parts:
        if end == joint.end_of_image:
            assert len(tokens) == len(image_allowed)
            assert all(joint.num_words <= t < joint.end_of_text for t in tokens)
            ids = torch.tensor(tokens) - joint.num_words
            assert image_allowed[torch.arange(len(ids)), ids].all()
        else:
            assert 1 <= len(tokens) <= max_words
            assert all(0 <= t < joint.num_words for t in tokens)


def test_sequences_hold_bos_the_drawn_order_and_end_tokens_with_padding_masked(vqvae_run):
    joint = JointVocabulary(num_words=22, num_codes=8)  # <eot> 30, <eoi> 31, <bos> 32
    captions = torch.tensor([[1, 10, 2, 5, PAD, PAD], [4, 10, 11, 12, 13, PAD]])
    codes = torch.tensor([[[0, 1], [2, 3]], [[7, 6], [5, 4]]])
    inputs, targets = assemble_sequences(joint, captions, codes, torch.tensor([True, False]), 32)
    text_first = [32, 1, 10, 2, 5, 30, 22, 23, 24, 25, 31]
    image_first = [32, 29, 28, 27, 26, 31, 4, 10, 11, 12, 13, 30]
    assert inputs.tolist() == [text_first, image_first[:-1]]
    assert targets.tolist() == [text_first[1:] + [PAD], image_first[1:]]

    model = untrained(vqvae_run[1])
    images = torch.randint(0, 4, (3, 3, 28, 28), generator=torch.Generator().manual_seed(1))
    word_ids = WordVocabulary().encode_padded(CAPTIONS)
    assert model.orders(3).tolist() == [True, False, True], "evaluation: parity"
    with torch.no_grad():
        nats = model.batch_nats((images, torch.zeros(3), word_ids))
        assert len(nats) == (4 + 1 + 49 + 1) + (5 + 1 + 49 + 1) + (6 + 1 + 49 + 1)
        alone = [  # padding of the batch changes no example's figure
            model.log_prob(images[i : i + 1], word_ids[i : i + 1], model.orders(3)[i : i + 1])
            for i in range(3)
        ]
    assert torch.allclose(
        -torch.cat(alone), torch.stack([c.sum() for c in nats.split([55, 56, 57])])
    )
    torch.manual_seed(0)
    drawn = model.train().orders(1000)
    model.eval()
    assert 400 < int(drawn.sum()) < 600, "training: a fair coin per example"


@pytest.mark.parametrize("run", ["vqvae_run", "global_vqvae_run"])
@pytest.mark.parametrize(
    "bias",
    [{"end_of_text": 30.0, "end_of_image": 30.0}, {"end_of_text": -30.0}, {"colours": 30.0}],
    ids=["ends-favoured", "end-of-text-shunned", "colours-favoured"],
)
def test_every_sample_is_well_formed_in_all_three_modes(run, bias, request):
    model = untrained(request.getfixturevalue(run)[1])
    joint, max_words = model.joint, model.hparams.max_caption_words
    image_allowed = model.vqvae.allowed_tokens
    colours = joint.num_words + model.vqvae.num_codes
    with torch.no_grad():  # push the untrained model towards malformed sequences
        for name, value in bias.items():
            ids = slice(colours, joint.end_of_text) if name == "colours" else getattr(joint, name)
            model.gpt.head.bias[ids] += value
    generator = torch.Generator().manual_seed(0)
    empty = torch.zeros(8, 0, dtype=torch.long)
    unconditional = model.continue_sequences(empty, generator=generator)
    prompts = [joint.text_tokens(model.words.encode(text)) for text in CAPTIONS]
    from_captions = model.complete(prompts, generator=generator)
    images = torch.randint(0, 4, (3, 3, 28, 28), generator=torch.Generator().manual_seed(2))
    image_prompts = torch.stack([joint.image_tokens(grid) for grid in model.tokens_of(images)])
    from_images = model.continue_sequences(image_prompts, generator=generator)
    for sequence in [*unconditional, *from_captions, *from_images]:
        assert_well_formed(sequence, joint, max_words, image_allowed)
    conditioned = zip([*prompts, *image_prompts], [*from_captions, *from_images], strict=True)
    for prompt, sequence in conditioned:
        assert torch.equal(sequence[: len(prompt)], prompt)
    orders = {joint.is_word(s[0]).item() for s in unconditional}
    colours_favoured = "colours" in bias and model.vqvae.global_colors  # images come first
    assert orders == ({False} if colours_favoured else {True, False}), "both orders"
    if bias.get("end_of_text", 0) < 0:  # a caption that never chooses to end stops at max_words
        for sequence in [*unconditional, *from_images]:
            words = [part for part, end in segments(sequence, joint) if end == joint.end_of_text]
            assert len(words[0]) == max_words

    generated = model.caption_to_image(CAPTIONS, generator=generator)
    assert generated.shape == (3, 3, 28, 28) and generated.dtype == torch.long
    assert generated.min() >= 0 and generated.max() <= 3
    for text in model.image_to_caption(images, generator=generator):
        assert 1 <= len(text.split()) <= max_words
        assert model.words.decode(model.words.encode(text)) == text
    for text, image in model.unconditional(4, generator=generator):
        assert isinstance(text, str) and image.shape == (3, 28, 28)


def test_caption_to_image_conditions_at_the_training_positions(vqvae_run, monkeypatch):
    """Each cached step's logits are those of one uncached pass over the finished
    sequence, and greedy decoding takes their likeliest code."""
    model = untrained(vqvae_run[1])
    joint = model.joint
    prompts = [joint.text_tokens(model.words.encode(text)) for text in CAPTIONS]
    batched = model.complete(prompts, greedy=True)
    steps = record_step_logits(model.gpt, monkeypatch)
    for prompt, sequence in zip(prompts, batched, strict=True):
        steps.clear()
        alone = model.continue_sequences(prompt[None], greedy=True)[0]
        assert torch.equal(sequence, alone), "no padding or neighbour changes a sample"
        step_logits = torch.cat(steps)
        with torch.no_grad():  # one uncached pass over <bos> caption <eot> image
            logits = model.gpt(model.gpt.with_bos(sequence[None]))[0]
        start = len(prompt)
        assert step_logits.shape == logits[start:-1].shape
        assert (step_logits - logits[start:-1]).abs().max() < 1e-5
        codes = logits[start : start + 49, joint.num_words : joint.end_of_text]
        assert torch.equal(sequence[start : start + 49], codes.argmax(dim=1) + joint.num_words)
        assert sequence[start + 49].item() == joint.end_of_image


def test_caption_to_image_with_global_colours_takes_colours_then_codes(
    global_vqvae_run, monkeypatch
):
    """Greedy decoding of an image of global colours: the likeliest colour at the two
    colour positions and the likeliest code after them, read from the logits an
    uncached pass gives, although the model favours colours everywhere."""
    model = untrained(global_vqvae_run[1])
    joint = model.joint
    codes, colours = joint.num_words, joint.num_words + model.vqvae.num_codes
    with torch.no_grad():
        model.gpt.head.bias[colours : joint.end_of_text] += 30.0
    steps = record_step_logits(model.gpt, monkeypatch)
    for text in CAPTIONS:
        prompt = joint.text_tokens(model.words.encode(text))
        steps.clear()
        sequence = model.continue_sequences(prompt[None], greedy=True)[0]
        step_logits = torch.cat(steps)
        with torch.no_grad():
            logits = model.gpt(model.gpt.with_bos(sequence[None]))[0]
        start = len(prompt)
        assert (step_logits - logits[start:-1]).abs().max() < 1e-5
        image = sequence[start : start + 51]
        colour_logits = logits[start : start + 2, colours : joint.end_of_text]
        code_logits = logits[start + 2 : start + 51, codes:colours]
        assert torch.equal(image[:2], colour_logits.argmax(dim=1) + colours)
        assert torch.equal(image[2:], code_logits.argmax(dim=1) + codes)
        assert sequence[start + 51].item() == joint.end_of_image
    drawn = model.caption_to_image(CAPTIONS, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 3, 28, 28)
    for image in drawn:
        assert len(image.flatten(1).T.unique(dim=0)) <= 2, "a stroke of one colour on another"


@pytest.mark.parametrize("run", ["vqvae_run", "global_vqvae_run"])
def test_the_config_fits_draws_the_grids_and_reloads_into_a_sampler(
    run, tmp_path, monkeypatch, request
):
    digits, ckpt = request.getfixturevalue(run)
    monkeypatch.chdir(tmp_path)
    fit = run_cli(
        [
            "fit",
            f"--config={REPO}/configs/multimodal/captioned_mnist.yaml",
            f"--model.init_args.vqvae_checkpoint={ckpt}",
            f"--data.init_args.path={digits}",
            "--data.init_args.batch_size=8",
            *[f"--model.init_args.{name}={value}" for name, value in TINY_GPT.items()],
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=1",
        ]
    )
    folder = Path(fit.trainer.log_dir)
    assert folder.parts[:3] == ("runs", "multimodal", "captioned_mnist")
    assert torch.isfinite(fit.trainer.callback_metrics["val/nats_per_token"])
    assert (folder / "checkpoints" / "best.ckpt").is_file()
    for mode in ("caption_to_image", "image_to_caption", "unconditional"):
        assert (folder / f"multimodal_{mode}.png").stat().st_size > 0
    if fit.model.vqvae.global_colors:  # repainted digits: stroke codes from the cache
        images, _, _ = next(iter(fit.datamodule.train_dataloader()))
        expected = fit.model.vqvae.encode(images)
        monkeypatch.setattr(fit.model.vqvae, "code_grid", None)
        assert torch.equal(fit.model.tokens_of(images), expected)

    restored = Multimodal.load_from_checkpoint(folder / "checkpoints" / "last.ckpt").eval()
    for name, value in fit.model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name
    samples = restored.sample(2, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 3, 28, 28) and samples.dtype == torch.long
    assert len(restored.image_to_caption(samples)) == 2
