"""Text data (vocabulary, windows, documents, padding, bad files) and the character GPT
(likelihood by hand, padding ignored, samples, the command line and its checkpoints)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from sampling_checks import record_step_logits
from torch.nn import functional as F

from genlab.cli import run_cli
from genlab.datamodules import text as text_module
from genlab.datamodules.text import IGNORE, CharVocabulary, TextDataModule, resolve_text_file
from genlab.lightning_modules import CharGPT

REPO = Path(__file__).resolve().parents[1]
POEMS = "roses are red\nviolets blue\n\nthe sun\nis up\n\nsky\n\nrain falls\non the plain\n\nab"


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line {i}: the quick brown fox\n" for i in range(40)))
    return path


def test_vocabulary_round_trips_text_and_places_eos_and_bos_after_the_characters():
    vocab = CharVocabulary.of_text("hello, world\n")
    assert vocab.characters == "\n ,dehlorw"
    ids = vocab.encode("world, hello\n")
    assert vocab.decode(ids) == "world, hello\n"
    assert (vocab.eos, vocab.bos, vocab.size) == (10, 11, 11)
    assert vocab.decode([vocab.bos, *ids.tolist(), vocab.eos, 3, 4]) == "world, hello\n"


def test_an_unknown_character_is_named_with_its_line_and_column():
    vocab = CharVocabulary("abc\n")
    with pytest.raises(ValueError, match=r"val.txt: character 'z' at line 2, column 3"):
        vocab.encode("abc\nabz", "val.txt")


def test_the_vocabulary_comes_from_the_training_split_only(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a" * 80 + "b" * 10 + "z" * 10)
    with pytest.raises(ValueError, match=r"t.txt \(val split\): character 'z'"):
        TextDataModule(str(path), context_length=4).setup()
    data = TextDataModule(str(path), context_length=4, vocabulary="abz")
    data.setup()
    assert data.vocabulary == "abz"


def test_windows_predict_each_next_character_and_validation_reads_back_to_back(text_file):
    data = TextDataModule(str(text_file), context_length=16, val_fraction=0.25, batch_size=5)
    data.setup()
    text = text_file.read_text()
    split = len(text) - round(0.25 * len(text))
    vocab = data.vocab
    train = data.datasets["train"]
    assert len(train) == split - 16 + 1, "a window at every offset"
    inputs, targets = train[7]
    assert inputs[0] == vocab.bos and torch.equal(inputs[1:], targets[:-1])
    assert vocab.decode(targets) == text[7:23]
    batches = list(data.val_dataloader())
    assert all(targets.shape[1] == 16 for _, targets in batches)
    stream = torch.cat([targets for _, targets in batches]).flatten()
    expected = vocab.encode(text[split:]).tolist() + [vocab.eos]
    assert stream.tolist() == expected[: len(stream)] and len(expected) - len(stream) < 16
    assert data.datasets["test"] is data.datasets["val"], "no test share: test reads validation"


def test_documents_are_padded_and_the_padding_is_left_out(tmp_path):
    path = tmp_path / "poems.txt"
    path.write_text(POEMS)
    data = TextDataModule(str(path), example="document", context_length=32, val_fraction=0.2)
    data.setup()
    vocab = data.vocab
    assert [vocab.decode(t) for _, t in data.datasets["train"]] == POEMS.split("\n\n")[:4]
    inputs, targets = next(iter(data.train_dataloader()))
    lengths = (targets != IGNORE).sum(dim=1)
    for row, length in enumerate(lengths.tolist()):
        assert inputs[row, 0] == vocab.bos and targets[row, length - 1] == vocab.eos
        assert torch.equal(inputs[row, 1:length], targets[row, : length - 1])
        assert (targets[row, length:] == IGNORE).all()
    assert inputs.shape[1] == int(lengths.max()), "padded to the longest document"


def test_a_document_longer_than_the_context_is_refused(tmp_path):
    path = tmp_path / "poems.txt"
    path.write_text(POEMS)
    data = TextDataModule(str(path), example="document", context_length=12, val_fraction=0.2)
    with pytest.raises(ValueError, match="document 0 has 26 characters.*context_length 12"):
        data.setup()


@pytest.mark.parametrize(
    "content,message", [(b"", "empty"), (b"\xff\xfe caf\xe9", "UTF-8")], ids=["empty", "latin1"]
)
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"bad.txt.*{message}"):
        TextDataModule(str(path))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        TextDataModule(str(tmp_path / "missing.txt"))


def test_a_named_corpus_is_read_from_root_and_never_fetched_when_present(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", no_network)
    with pytest.raises(FileNotFoundError, match="download is off"):
        resolve_text_file("tinyshakespeare", str(tmp_path), download=False)
    (tmp_path / text_module.CORPORA["tinyshakespeare"].filename).write_text("First Citizen:\n")
    assert resolve_text_file("tinyshakespeare", str(tmp_path), download=True).read_text() == (
        "First Citizen:\n"
    )


def tiny_char_gpt(vocabulary="ab c\n", context_length=16) -> CharGPT:
    torch.manual_seed(0)
    return CharGPT(vocabulary, context_length, width=16, num_heads=2, num_layers=1).eval()


def test_log_prob_is_the_sum_of_softmax_log_probabilities_by_hand():
    model = tiny_char_gpt()
    tokens = model.encode("ab c")[None]
    with torch.no_grad():
        logits = model.gpt(model.gpt.with_bos(tokens))[0]
        by_hand = sum(math.log(F.softmax(logits[t], dim=-1)[tokens[0, t]].item()) for t in range(4))
        assert model.log_prob(tokens).item() == pytest.approx(by_hand, rel=1e-5)


def test_padding_does_not_change_the_batch_likelihood(tmp_path):
    path = tmp_path / "poems.txt"
    path.write_text(POEMS)
    data = TextDataModule(str(path), example="document", context_length=32, val_fraction=0.2)
    data.setup()
    model = tiny_char_gpt(data.vocabulary, 32)
    inputs, targets = next(iter(data.train_dataloader()))
    with torch.no_grad():
        nats = model.batch_nats((inputs, targets))
        garbled = inputs.masked_fill(targets == IGNORE, 3)
        assert torch.equal(nats, model.batch_nats((garbled, targets)))
        per_document = [-model.log_prob(t[t != IGNORE][None]).item() for t in targets]
    assert nats.numel() == int((targets != IGNORE).sum())
    assert nats.sum().item() == pytest.approx(sum(per_document), rel=1e-5)


def test_samples_start_with_the_prompt_stop_at_eos_and_match_with_and_without_cache(monkeypatch):
    """<eos> rare enough that some rows run past the context of 16 (the view slides);
    every cached step draws from the logits of one uncached pass over the same view."""
    model = tiny_char_gpt()
    with torch.no_grad():
        model.gpt.head.bias[model.vocab.eos] = -1.0
    steps = record_step_logits(model.gpt, monkeypatch)
    runs, step_logits = [], []
    for use_cache in (True, False):
        steps.clear()
        generator = torch.Generator().manual_seed(3)
        runs.append(
            model.sample(6, "ab", generator=generator, use_cache=use_cache, max_new_tokens=40)
        )
        step_logits.append(torch.stack(steps, dim=1))
    assert torch.equal(runs[0], runs[1])
    assert (step_logits[0] - step_logits[1]).abs().max() < 1e-5
    ended = runs[0] == model.vocab.eos
    lengths = torch.where(ended.any(dim=1), ended.int().argmax(dim=1), runs[0].shape[1])
    assert lengths.max() > 16 and lengths.min() < 16, "rows past the context and rows that end"
    texts = model.sample_text(
        6, "ab", generator=torch.Generator().manual_seed(3), max_new_tokens=40
    )
    assert [len(text) for text in texts] == lengths.tolist()
    assert all(text.startswith("ab") for text in texts)


def nats_per_char_by_hand(cli) -> float:
    """Cross-entropy of every target character of the test windows, from the model's
    logits, averaged over the characters."""
    total, count = 0.0, 0
    model = cli.model.eval()
    with torch.no_grad():
        for inputs, targets in cli.datamodule.test_dataloader():
            logits = model(inputs)
            total += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
            count += targets.numel()
    return float(total) / count


def test_char_gpt_fits_tests_predicts_and_reloads_through_the_command_line(
    text_file, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    args = [
        f"--config={REPO}/configs/char_gpt/tinyshakespeare.yaml",
        f"--data.init_args.path={text_file}",
        "--data.init_args.context_length=16",
        "--data.init_args.batch_size=8",
        "--model.init_args.width=16",
        "--model.init_args.num_layers=1",
        "--trainer.max_steps=6",
        "--trainer.val_check_interval=3",
        "--trainer.limit_val_batches=2",
        "--trainer.callbacks=[]",
        "--trainer.callbacks+=genlab.callbacks.TextSamples",
        "--trainer.callbacks.max_new_tokens=20",
    ]
    fit = run_cli(["fit", *args])
    run = Path(fit.trainer.log_dir)
    assert run.parts[:3] == ("runs", "char_gpt", "lines")
    assert fit.model.vocab == fit.datamodule.vocab and fit.model.gpt.config.context_length == 16
    assert (run / "samples.txt").read_text().count("===== step") == 3
    last = run / "checkpoints" / "last.ckpt"
    test = run_cli(["test", *args, f"--ckpt_path={last}"])
    expected = nats_per_char_by_hand(test)
    assert float(test.trainer.callback_metrics["test/nats_per_dim"]) == pytest.approx(expected)
    run_cli(["predict", *args, f"--ckpt_path={last}", "--data.init_args.predict_samples=3"])
    assert (run / "predict_samples.txt").read_text().count("--- sample") == 3
    restored = CharGPT.load_from_checkpoint(last).eval()
    tokens = restored.encode("line 3: the")[None]
    with torch.no_grad():
        assert torch.allclose(restored.log_prob(tokens), fit.model.eval().log_prob(tokens))
    assert restored.sample_text(1, "line", generator=torch.Generator().manual_seed(0))[0][:4] == (
        "line"
    )
