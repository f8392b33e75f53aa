"""GPT analyses: sentence log-probability, attention maps and their pictures, the
AttentionMaps callback, and embedding inversion."""

from __future__ import annotations

import math

import lightning as L
import matplotlib.pyplot as plt
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.nn import functional as F

from genlab.analysis import (
    attention_from,
    attention_maps,
    format_inversion,
    head_average,
    invert_embeddings,
    plot_attention_heatmaps,
    plot_attention_on_text,
    sentence_log_prob,
    token_labels,
)
from genlab.callbacks import AttentionMaps, EmbeddingInversion, SentenceLogProbs
from genlab.datamodules.text import TextDataModule
from genlab.lightning_modules.char_gpt import CharGPT


def tiny_gpt(vocabulary: str = "ab c\n", num_layers: int = 1, width: int = 16) -> CharGPT:
    torch.manual_seed(0)
    return CharGPT(
        vocabulary=vocabulary,
        context_length=16,
        width=width,
        num_heads=2,
        num_layers=num_layers,
    )


@torch.no_grad()
def next_token_probs(model: CharGPT, prefix: str) -> torch.Tensor:
    """p(next token | <bos> + prefix) by an explicit softmax of the last logits."""
    tokens = model.gpt.with_bos(model.encode(prefix)[None])
    return torch.softmax(model.gpt(tokens)[0, -1].double(), dim=-1)


def test_sentence_log_prob_is_the_log_of_the_product_of_next_token_probabilities():
    model = tiny_gpt(vocabulary="ab c").eval()
    text = "ab cab"
    probs = [
        float(next_token_probs(model, text[:i])[model.vocab.characters.index(c)])
        for i, c in enumerate(text)
    ]
    eos = float(next_token_probs(model, text)[model.vocab.eos])

    score = sentence_log_prob(model, text)
    assert [token.character for token in score.tokens] == list(text)
    for token, p in zip(score.tokens, probs, strict=True):
        assert token.log_prob == pytest.approx(math.log(p), abs=1e-5)
    assert math.exp(score.log_prob) == pytest.approx(math.prod(probs), rel=1e-5)
    assert score.bits_per_character == pytest.approx(
        -math.log2(math.prod(probs)) / len(text), rel=1e-5
    )

    complete = sentence_log_prob(model, text, include_eos=True)
    assert [token.character for token in complete.tokens] == [*text, "<eos>"]
    assert complete.tokens[-1].log_prob == pytest.approx(math.log(eos), abs=1e-5)
    assert math.exp(complete.log_prob) == pytest.approx(math.prod(probs) * eos, rel=1e-5)


def test_sentence_log_prob_rejects_nothing_to_score_and_keeps_the_training_flag():
    model = tiny_gpt().train()
    with pytest.raises(ValueError, match="empty"):
        sentence_log_prob(model, "")
    assert sentence_log_prob(model, "", include_eos=True).tokens[0].character == "<eos>"
    assert model.training


def test_attention_maps_are_causal_distributions_that_match_the_first_layer_by_hand():
    model = tiny_gpt(num_layers=2).train()
    text = "ab c\nab"
    weights = attention_maps(model, text)
    size = len(text) + 1
    assert weights.shape == (2, 2, size, size)
    assert model.training
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 2, size))
    seen = torch.ones(size, size, dtype=torch.bool).tril()
    assert torch.all(weights[..., ~seen] == 0) and torch.all(weights[..., seen] > 0)

    gpt = model.gpt
    with torch.no_grad():
        x = gpt.embed(gpt.with_bos(model.encode(text)[None]))
        q, k, _ = gpt.blocks[0].attention.qkv(gpt.blocks[0].norm1(x)).split(16, dim=2)
        q, k = (part.view(1, size, 2, 8).transpose(1, 2) for part in (q, k))
        scores = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~seen, float("-inf"))
    torch.testing.assert_close(weights[0], scores.softmax(dim=-1)[0])

    torch.testing.assert_close(head_average(weights), weights.mean(dim=1))
    torch.testing.assert_close(attention_from(weights, -1, layer=1), weights[1, :, -1].mean(0))
    torch.testing.assert_close(attention_from(weights, 3), weights[:, :, 3].mean(dim=(0, 1)))
    assert token_labels(text) == ["<bos>", "a", "b", "␣", "c", "\\n", "a", "b"]


def test_attention_pictures_have_a_panel_per_head_and_a_letter_per_position():
    model = tiny_gpt(num_layers=2)
    text = "ab c\nab c ab"
    weights = attention_maps(model, text)
    labels = token_labels(text)
    heatmaps = plot_attention_heatmaps(weights, labels)
    assert len(heatmaps.axes) == 2 * (2 + 1) + 1  # layers x (heads + mean), colour bar
    assert [t.get_text() for t in heatmaps.axes[0].get_xticklabels()] == labels
    on_text = plot_attention_on_text(attention_from(weights, 5), labels, 5, line_width=8)
    ax = on_text.axes[0]
    assert [t.get_text() for t in ax.texts] == labels
    rows = {round(t.get_position()[1], 3) for t in ax.texts}
    assert len(rows) == 3  # a line break after "\n" and a wrap at 8 cells
    assert "position 5 (\\n)" in ax.get_title()
    with pytest.raises(ValueError, match="labels"):
        plot_attention_heatmaps(weights, labels[:-1])
    plt.close("all")


def fit_on_hello_world(tmp_path, callbacks: list[L.Callback], **trainer_options) -> L.Trainer:
    """A tiny CharGPT fitted on a few lines of "hello world" with ``callbacks``, logging
    into ``tmp_path/lightning_logs/version_0``."""
    text_file = tmp_path / "text.txt"
    text_file.write_text("hello world\n" * 20, encoding="utf-8")
    data = TextDataModule(path=str(text_file), context_length=16, batch_size=4)
    model = tiny_gpt(vocabulary=data.vocabulary)
    trainer = L.Trainer(
        limit_val_batches=1,
        logger=TensorBoardLogger(tmp_path),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **trainer_options,
    )
    trainer.fit(model, datamodule=data)
    return trainer


def test_attention_maps_callback_writes_both_pictures(tmp_path):
    callback = AttentionMaps(prompt="hello world", query_position=-1, every_n_validations=1)
    trainer = fit_on_hello_world(tmp_path, [callback], max_steps=2, val_check_interval=1)
    folder = tmp_path / "lightning_logs" / "version_0"
    assert trainer.log_dir == str(folder)
    assert callback.validations == 2
    for name in ("attention_heatmaps.png", "attention_text.png"):
        assert (folder / name).stat().st_size > 0


def test_attention_maps_callback_rejects_a_prompt_outside_the_vocabulary(tmp_path):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        AttentionMaps(prompt="xyz").on_fit_start(None, tiny_gpt())
    with pytest.raises(ValueError, match="outside"):
        AttentionMaps(prompt="ab", query_position=3)


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from several intra-op threads, and on a busy 2-core
    machine their spinning slows a few hundred small steps from seconds to minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_hello_world() -> CharGPT:
    """A tiny CharGPT that has learned the repeating text "hello world\\n"."""
    text = "hello world\n" * 50
    model = tiny_gpt(vocabulary="\n dehlorw", num_layers=2, width=32)
    stream = model.encode(text)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        starts = torch.randint(0, len(stream) - 15, (16,), generator=generator)
        windows = torch.stack([stream[s : s + 15] for s in starts.tolist()])
        logits = model.gpt(model.gpt.with_bos(windows)[:, :-1])
        loss = F.cross_entropy(logits.transpose(1, 2), windows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_inversion_finds_a_soft_prompt_for_the_target_and_leaves_the_model_alone(one_thread):
    """The model has only read "hello world\\n" over and over; a soft prompt must make
    it say the line from its middle."""
    model = trained_hello_world()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    target = "world\nhello"
    result = invert_embeddings(model, target, num_embeddings=4, iterations=100, log_every=10)
    assert [step.iteration for step in result.history] == list(range(0, 101, 10))
    first, last = result.history[0], result.final
    assert not first.exact and first.continuation != target
    assert last.loss < 0.1 * first.loss
    assert last.exact and last.continuation == target
    assert len(last.nearest_tokens) == 4
    assert set(last.nearest_tokens) <= {"\\n", "␣", "<eos>", *"dehlorw"}
    assert result.embeddings.shape == (4, 32)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed"
    assert all(parameter.requires_grad for parameter in model.parameters())
    table = format_inversion(result).splitlines()
    assert len(table) == 2 + len(result.history)
    assert repr(target) in table[-1] and "yes" in table[-1]


def test_inversion_needs_the_soft_prompt_and_target_to_fit_in_the_context():
    model = tiny_gpt(vocabulary="\n dehlorw")
    invert_embeddings(model, "hello world", num_embeddings=5, iterations=0)  # 5 + 11 = 16
    with pytest.raises(ValueError, match="context length 16"):
        invert_embeddings(model, "hello world", num_embeddings=5, include_eos=True)
    with pytest.raises(ValueError, match="context length 16"):
        invert_embeddings(model, "hello world", num_embeddings=6)


def test_text_analysis_callbacks_write_scores_and_an_inversion_after_fit(tmp_path):
    sentences = ["hello", "olleh", "hello world"]
    callbacks = [
        SentenceLogProbs(sentences),
        EmbeddingInversion(target="hello", iterations=4, log_every=2),
    ]
    model = fit_on_hello_world(tmp_path, callbacks, max_steps=3).lightning_module
    folder = tmp_path / "lightning_logs" / "version_0"
    header, *rows = (folder / "sentence_log_probs.txt").read_text().splitlines()
    assert header.split()[-1] == "sentence"
    expected = sorted((sentence_log_prob(model, s) for s in sentences), key=lambda s: -s.log_prob)
    assert [row.split(maxsplit=3)[3] for row in rows] == [repr(s.text) for s in expected]
    for row, score in zip(rows, expected, strict=True):
        nats = -score.log_prob / len(score.text)
        assert row.split()[:3] == [
            f"{score.log_prob:.2f}",
            f"{nats:.4f}",
            f"{nats / math.log(2):.4f}",
        ]
    inversion = (folder / "embedding_inversion.txt").read_text().splitlines()
    assert inversion[0] == "target 'hello'"
    assert [int(line.split()[0]) for line in inversion[2:]] == [0, 2, 4]


def test_text_analysis_callbacks_reject_text_outside_the_vocabulary():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        SentenceLogProbs(["xyz"]).on_fit_start(None, tiny_gpt())
    with pytest.raises(ValueError, match="not in the vocabulary"):
        EmbeddingInversion(target="xyz").on_fit_start(None, tiny_gpt())
    with pytest.raises(ValueError, match="at least one sentence"):
        SentenceLogProbs([])
    with pytest.raises(ValueError, match="holds 15 after <bos>"):
        SentenceLogProbs(["ab " * 6]).on_fit_start(None, tiny_gpt())
    with pytest.raises(ValueError, match="context"):
        EmbeddingInversion(target="ab " * 5, num_embeddings=4).on_fit_start(None, tiny_gpt())
