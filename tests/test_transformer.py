"""The GPT building block: causality by brute force, the KV cache against full passes,
the explicit attention path against the fused one, and the sampling filters."""

from __future__ import annotations

import pytest
import torch
from sampling_checks import record_step_logits

from genlab.nn.transformer import GPT, GPTConfig, causal_mask, filter_logits


def tiny_gpt(vocab_size=7, context_length=12, width=16, num_heads=2, num_layers=2):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size, context_length, width, num_heads, num_layers)
    return GPT(config).eval()


def tokens(batch, length, vocab_size=7, seed=0):
    return torch.randint(
        0, vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed)
    )


def test_no_logit_moves_when_a_later_token_changes():
    model = tiny_gpt()
    sequence = model.with_bos(tokens(1, 9))
    with torch.no_grad():
        base = model(sequence)
        for position in range(1, sequence.shape[1]):
            changed = sequence.clone()
            changed[0, position] = (changed[0, position] + 1) % 7
            moved = (model(changed) - base).abs().amax(dim=-1)[0] > 1e-6
            assert not moved[:position].any(), f"an output before {position} moved"
            assert moved[position:].any(), f"nothing after {position} reads it"


def test_cached_decoding_gives_the_full_pass_logits_at_every_step():
    model = tiny_gpt()
    sequence = model.with_bos(tokens(3, 10))
    with torch.no_grad():
        full = model(sequence)
        cache = model.new_cache(3)
        prefill = model(sequence[:, :4], cache)
        steps = [model(sequence[:, t : t + 1], cache) for t in range(4, 8)]
        chunk = model(sequence[:, 8:], cache)
    assert torch.allclose(prefill, full[:, :4], atol=1e-5)
    for t, step in zip(range(4, 8), steps, strict=True):
        assert torch.allclose(step[:, 0], full[:, t], atol=1e-5), f"step {t}"
    assert torch.allclose(chunk, full[:, 8:], atol=1e-5), "a multi-token step after the cache"
    assert cache.length == sequence.shape[1]


@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"top_p": 0.8, "temperature": 0.7}])
def test_cached_and_uncached_generation_draw_the_same_tokens(options):
    model = tiny_gpt()
    prompt = tokens(4, 2, seed=1)
    runs = [
        model.generate(
            prompt, 9, use_cache=use_cache, generator=torch.Generator().manual_seed(5), **options
        )
        for use_cache in (True, False)
    ]
    assert torch.equal(runs[0], runs[1])
    assert runs[0].shape == (4, 11) and torch.equal(runs[0][:, :2], prompt)
    assert runs[0][:, 2:].unique().numel() > 1


def test_generation_from_an_empty_prompt_fills_the_context():
    model = tiny_gpt()
    out = model.generate(
        torch.zeros(2, 0, dtype=torch.long), 11, generator=torch.Generator().manual_seed(0)
    )
    assert out.shape == (2, 11)
    with pytest.raises(ValueError, match="context length"):
        model(torch.zeros(1, 13, dtype=torch.long))


@pytest.mark.parametrize("prompt_length", [0, 3, 20])
def test_generation_past_the_context_slides_the_view_the_same_way_with_and_without_cache(
    prompt_length, monkeypatch
):
    """30 tokens through a context of 12: the view slides several times, and every
    cached step draws from the logits of one uncached pass over the same view."""
    model = tiny_gpt()
    prompt = tokens(3, prompt_length, seed=2)
    steps = record_step_logits(model, monkeypatch)
    runs, step_logits = [], []
    for use_cache in (True, False):
        steps.clear()
        generator = torch.Generator().manual_seed(1)
        runs.append(model.generate(prompt, 30, use_cache=use_cache, generator=generator))
        step_logits.append(torch.stack(steps, dim=1))
    assert torch.equal(runs[0], runs[1])
    assert runs[0].shape == (3, prompt_length + 30)
    assert step_logits[0].shape == (3, 30, 7)
    assert (step_logits[0] - step_logits[1]).abs().max() < 1e-5


def test_greedy_generation_past_the_context_reads_bos_and_the_newer_half():
    model = tiny_gpt()
    out = model.generate(torch.zeros(1, 0, dtype=torch.long), 16, greedy=True)
    with torch.no_grad():
        # context 12: <bos> + 11 tokens fill it; at 12 tokens the view keeps the last 5
        after_shift = model(model.with_bos(out[:, 7:12]))[0, -1].argmax()
        before_shift = model(model.with_bos(out[:, :11]))[0, -1].argmax()
    assert out[0, 12] == after_shift
    assert out[0, 11] == before_shift


def test_generation_stops_once_every_row_drew_the_stop_token():
    model = tiny_gpt()
    with torch.no_grad():
        model.head.bias[3] = 5.0  # token 3 likely, so every row draws it soon
    out = model.generate(
        torch.zeros(4, 0, dtype=torch.long),
        11,
        stop_token=3,
        generator=torch.Generator().manual_seed(0),
    )
    first_stop = (out == 3).int().argmax(dim=1)
    assert (out == 3).any(dim=1).all()
    assert out.shape[1] == int(first_stop.max()) + 1 < 11
    for row, stop in enumerate(first_stop.tolist()):
        assert (out[row, stop:] == 3).all() and not (out[row, :stop] == 3).any()


def test_explicit_attention_equals_the_fused_path_and_its_weights_are_causal():
    model = tiny_gpt()
    sequence = model.with_bos(tokens(2, 8))
    with torch.no_grad():
        fused = model(sequence)
        explicit, weights = model(sequence, return_attention=True)
    assert torch.allclose(fused, explicit, atol=1e-5)
    assert len(weights) == 2 and weights[0].shape == (2, 2, 9, 9)
    for layer in weights:
        assert torch.allclose(layer.sum(dim=-1), torch.ones(2, 2, 9), atol=1e-6)
        assert (layer.triu(diagonal=1) == 0).all()


def test_the_shifted_mask_lets_query_t_see_keys_up_to_t():
    assert causal_mask(2, 5, torch.device("cpu")).tolist() == [
        [True, True, True, True, False],
        [True, True, True, True, True],
    ]


def test_greedy_generation_takes_the_likeliest_token():
    model = tiny_gpt()
    prompt = tokens(2, 3)
    out = model.generate(prompt, 1, greedy=True)
    with torch.no_grad():
        expected = model(model.with_bos(prompt))[:, -1].argmax(-1)
    assert torch.equal(out[:, -1], expected)


def test_top_k_and_top_p_keep_exactly_the_tokens_they_should():
    probs = torch.tensor([[0.05, 0.4, 0.1, 0.3, 0.15]])
    logits = probs.log()
    top2 = filter_logits(logits, 2, None).isfinite()
    assert top2.tolist() == [[False, True, False, True, False]]
    nucleus = filter_logits(logits, None, 0.75).isfinite()
    assert nucleus.tolist() == [[False, True, False, True, True]]
    assert filter_logits(logits, None, 0.1).isfinite().sum() == 1
    model = tiny_gpt(vocab_size=7)
    draws = model.generate(tokens(500, 1), 1, top_k=2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        allowed = model(model.with_bos(tokens(500, 1)))[:, -1].topk(2).indices
    assert (draws[:, -1:] == allowed).any(dim=1).all()


def test_width_must_split_into_heads():
    with pytest.raises(ValueError, match="num_heads"):
        GPTConfig(5, 8, width=10, num_heads=4)
