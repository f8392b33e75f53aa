"""Captioned coloured MNIST: colour names, captions, the word vocabulary, the data module."""

import numpy as np
import pytest
import torch

from genlab.datamodules import CaptionedMNISTDataModule, WordVocabulary
from genlab.datamodules.images import color_code_to_rgb
from genlab.datamodules.multimodal import (
    COLOR_NAMES,
    MAX_CAPTION_WORDS,
    PAD,
    CaptionParts,
    caption,
    color_name,
    parse_caption,
    shift_and_rotate,
)


def all_colors(num_levels: int) -> np.ndarray:
    """Every RGB colour of K levels per channel, [K^3, 3]."""
    return color_code_to_rgb(np.arange(num_levels**3), num_levels)


def single_color(pixels: torch.Tensor) -> tuple[int, ...]:
    """The one colour of pixels [3, P]; fails when they hold several."""
    colors = torch.unique(pixels, dim=1)
    assert colors.shape[1] == 1, f"expected one colour, found {colors.T.tolist()}"
    return tuple(colors[:, 0].tolist())


@pytest.mark.parametrize("num_levels", [2, 4])
def test_color_naming_is_deterministic_and_covers_every_code(num_levels):
    colors = all_colors(num_levels)
    names = [color_name(rgb, num_levels) for rgb in colors]
    assert names == [color_name(tuple(int(c) for c in rgb), num_levels) for rgb in colors]
    assert set(names) <= set(COLOR_NAMES)
    top = num_levels - 1
    expected = {
        (0, 0, 0): "black",
        (top, top, top): "white",
        (top, 0, 0): "red",
        (top, top, 0): "yellow",
        (0, top, 0): "green",
        (0, top, top): "cyan",
        (0, 0, top): "blue",
        (top, 0, top): "magenta",
    }
    if num_levels == 4:
        expected |= {
            (1, 0, 0): "dark red",
            (2, 0, 0): "dark red",
            (3, 2, 2): "light red",
            (1, 1, 1): "dark gray",
            (2, 2, 2): "light gray",
            (1, 1, 3): "light blue",
            (1, 1, 0): "dark yellow",
        }
    assert {rgb: color_name(rgb, num_levels) for rgb in expected} == expected
    assert len(set(names)) == (8 if num_levels == 2 else 22)


def test_color_name_rejects_channels_outside_the_levels():
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        color_name((4, 0, 0), 4)


def test_caption_names_digit_and_colours_and_parses_back():
    assert caption(7, (1, 0, 0), (1, 1, 3), 4) == "dark red seven on light blue"
    for num_levels in (2, 4):
        colors = all_colors(num_levels)
        for fore in range(len(colors)):
            for back in range(len(colors)):
                label = (fore + back) % 10
                text = caption(label, colors[fore], colors[back], num_levels)
                expected = CaptionParts(
                    label,
                    color_name(colors[fore], num_levels),
                    color_name(colors[back], num_levels),
                )
                assert parse_caption(text) == expected


def test_every_caption_round_trips_through_the_vocabulary():
    vocabulary = WordVocabulary()
    texts = {
        f"{fore} {digit} on {back}"
        for fore in COLOR_NAMES
        for back in COLOR_NAMES
        for digit in (
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
        )
    }
    for text in texts:
        ids = vocabulary.encode(text)
        assert ids.dtype == torch.long and ids.min() >= 0 and ids.max() < vocabulary.size
        assert vocabulary.decode(ids) == text
    padded = vocabulary.encode_padded(sorted(texts))
    assert padded.shape == (len(texts), MAX_CAPTION_WORDS)
    assert [vocabulary.decode(row) for row in padded] == sorted(texts)


def test_vocabulary_ids_are_fixed():
    vocabulary = WordVocabulary()
    assert vocabulary.size == 22
    assert vocabulary.encode("dark red seven on light blue").tolist() == [11, 16, 7, 10, 12, 20]
    assert vocabulary.decode([0, 9, 10, PAD, 13]) == "zero nine on black"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "exactly one 'on'"),
        ("red seven blue", "exactly one 'on'"),
        ("red seven on on blue", "exactly one 'on'"),
        ("seven on blue", "a colour name and a digit word"),
        ("red 7 on blue", "a colour name and a digit word"),
        ("purple seven on blue", "foreground colour 'purple'"),
        ("red seven on", "background colour ''"),
        ("red seven on blue sky", "background colour 'blue sky'"),
    ],
)
def test_malformed_captions_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(text)


def test_unknown_words_and_ids_are_named():
    vocabulary = WordVocabulary()
    with pytest.raises(ValueError, match="word 'purple'"):
        vocabulary.encode("red seven on purple")
    with pytest.raises(ValueError, match="id 22"):
        vocabulary.decode([1, 22])


def test_datamodule_properties_are_known_before_setup(digits_file):
    datamodule = CaptionedMNISTDataModule(path=str(digits_file), batch_size=8)
    assert datamodule.image_shape == (3, 28, 28)
    assert datamodule.num_levels == 4
    assert datamodule.name == "captioned_mnist"
    assert CaptionedMNISTDataModule(path=str(digits_file), num_levels=2).name.endswith("_2levels")
    assert datamodule.vocabulary == WordVocabulary()


def test_batches_hold_images_labels_and_padded_captions(digits_file):
    datamodule = CaptionedMNISTDataModule(path=str(digits_file), batch_size=8)
    datamodule.setup("fit")
    images, labels, captions = next(iter(datamodule.train_dataloader()))
    assert images.shape == (8, 3, 28, 28) and images.dtype == torch.long
    assert images.min() >= 0 and images.max() <= 3
    assert labels.shape == (8,) and captions.shape == (8, MAX_CAPTION_WORDS)
    assert captions.dtype == torch.long
    is_pad = captions == PAD
    assert not is_pad[:, :4].any(), "a caption has at least four words"
    assert (is_pad[:, :-1] <= is_pad[:, 1:]).all(), "padding only at the end"


@pytest.mark.parametrize("num_levels", [2, 4])
def test_caption_names_the_label_and_the_colours_painted(digits_file, num_levels):
    contents = np.load(digits_file)
    datamodule = CaptionedMNISTDataModule(
        path=str(digits_file), num_levels=num_levels, val_fraction=0.0, seed=3
    )
    datamodule.setup("fit")
    for split, dataset in (("train", datamodule.train_set), ("test", datamodule.test_set)):
        digits = torch.from_numpy(contents[split][..., 0] > 127.5)
        assert torch.equal(dataset.labels, torch.from_numpy(contents[f"{split}_labels"]))
        for image, label, ids, digit in zip(
            dataset.images, dataset.labels, dataset.captions, digits, strict=True
        ):
            foreground = single_color(image[:, digit])
            background = single_color(image[:, ~digit])
            parts = parse_caption(datamodule.vocabulary.decode(ids))
            assert parts == CaptionParts(
                int(label), color_name(foreground, num_levels), color_name(background, num_levels)
            )


def test_captions_follow_their_images_into_the_validation_split(digits_file):
    datamodule = CaptionedMNISTDataModule(path=str(digits_file), val_fraction=0.3)
    datamodule.setup("fit")
    assert len(datamodule.val_set) == 7  # 30% of the 24 training digits
    for dataset in (datamodule.train_set, datamodule.val_set):
        for image, label, ids in zip(dataset.images, dataset.labels, dataset.captions, strict=True):
            painted = {color_name(rgb, 4) for rgb in torch.unique(image.flatten(1), dim=1).T}
            parts = parse_caption(datamodule.vocabulary.decode(ids))
            assert parts.digit == label
            assert {parts.foreground_name, parts.background_name} == painted


def test_array_file_without_labels_is_refused_by_name(tmp_path):
    images = np.zeros((4, 28, 28, 1), dtype=np.uint8)
    path = tmp_path / "unlabelled.npz"
    np.savez(path, train=images, test=images)
    datamodule = CaptionedMNISTDataModule(path=str(path), val_fraction=0.25)
    with pytest.raises(ValueError, match="unlabelled.npz: captions need a digit label"):
        datamodule.setup("fit")


def test_recolored_training_batches_are_repainted_and_recaptioned_at_every_draw(digits_file):
    path = str(digits_file)
    plain = CaptionedMNISTDataModule(path=path, val_fraction=0.3, seed=3)
    recolored = CaptionedMNISTDataModule(path=path, val_fraction=0.3, seed=3, recolor=True)
    for datamodule in (plain, recolored):
        datamodule.setup("fit")
    assert torch.equal(recolored.val_set.images, plain.val_set.images), "validation stays fixed"
    indices = list(range(len(plain.train_set)))
    draws = [recolored.train_set.__getitems__(indices) for _ in range(2)]
    for images, labels, captions in draws:
        assert torch.equal(labels, plain.train_set.labels)
        for image, label, ids, stroke in zip(
            images, labels, captions, plain.train_set.strokes[:, 0], strict=True
        ):
            foreground = single_color(image[:, stroke])
            background = single_color(image[:, ~stroke])
            assert parse_caption(recolored.vocabulary.decode(ids)) == CaptionParts(
                int(label), color_name(foreground, 4), color_name(background, 4)
            )
    assert not torch.equal(draws[0][0], draws[1][0]), "every draw paints new colours"
    again = CaptionedMNISTDataModule(path=path, val_fraction=0.3, seed=3, recolor=True)
    again.setup("fit")
    assert torch.equal(again.train_set.__getitems__(indices)[0], draws[0][0]), "seeded"


def test_strokes_shift_by_whole_pixels_and_turn_about_the_centre():
    strokes = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    strokes[:, 0, 2:5, 3] = True
    strokes[:, 0, 4, 3:6] = True
    shifts = torch.tensor([[2.0, 0.0], [0.0, -1.0], [0.0, 0.0]])
    angles = torch.tensor([0.0, 0.0, torch.pi])
    moved = shift_and_rotate(strokes, shifts, angles)
    assert torch.equal(moved[0, 0], strokes[0, 0].roll(2, dims=1)), "two pixels right"
    assert torch.equal(moved[1, 0], strokes[1, 0].roll(-1, dims=0)), "one pixel up"
    assert torch.equal(moved[2, 0], strokes[2, 0].flip(0, 1)), "half a turn"
    assert torch.equal(shift_and_rotate(strokes, torch.zeros(3, 2), torch.zeros(3)), strokes)


def test_moved_training_digits_keep_their_labels_and_captions_and_are_seeded(digits_file):
    path = str(digits_file)
    moving = dict(path=path, val_fraction=0.3, seed=3, recolor=True, max_rotation=10.0)
    datamodule = CaptionedMNISTDataModule(max_shift=2.0, **moving)
    still = CaptionedMNISTDataModule(path=path, val_fraction=0.3, seed=3, recolor=True)
    for data in (datamodule, still):
        data.setup("fit")
    indices = list(range(len(datamodule.train_set)))
    images, labels, captions = datamodule.train_set.__getitems__(indices)
    painted, _, same_captions = still.train_set.__getitems__(indices)
    assert torch.equal(labels, still.train_set.labels) and torch.equal(captions, same_captions)
    assert not torch.equal(images, painted), "the digits moved"
    for image, fixed in zip(images, painted, strict=True):
        colours = set(map(tuple, image.flatten(1).T.tolist()))
        assert colours <= set(map(tuple, fixed.flatten(1).T.tolist())), "the same colours"
    again = CaptionedMNISTDataModule(max_shift=2.0, **moving)
    again.setup("fit")
    assert torch.equal(again.train_set.__getitems__(indices)[0], images), "seeded"
    assert torch.equal(datamodule.val_set.images, still.val_set.images), "validation stays"
    with pytest.raises(ValueError, match="need recolor: true"):
        CaptionedMNISTDataModule(path=path, max_shift=1.0)
