"""Test figures named for what they are.

``metrics.json`` holds every ``test/*`` metric a model logged. Most are negative
log-likelihoods per data dim, but the same name means something else in some families:
a VAE's ``test/nats_per_dim`` is its negative ELBO (a bound), a token prior's is the
token NLL spread over the subpixels of a token, a character GPT's is per character. The
write-up names each figure by its metric and, where the family changes its meaning, by
the family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The metrics a write-up reports as figures, the first one found being the headline.
MEASURES = {
    "test/nats_per_dim": "NLL per dim",
    "test/nats_per_token": "NLL per token",
    "test/iw_nats_per_dim": "importance-weighted NLL estimate per dim",
    "test/recon_nats_per_dim": "reconstruction NLL per dim (not a likelihood)",
    "test/kl_nats_per_dim": "KL term per dim",
}
FAMILY_LABELS = {
    ("VAE", "test/nats_per_dim"): "negative ELBO per dim (upper bound on the NLL)",
    ("VAE", "test/recon_nats_per_dim"): "reconstruction term of the ELBO per dim",
    ("VQPrior", "test/nats_per_dim"): "token NLL per subpixel (no reconstruction term)",
    ("IGPT", "test/nats_per_token"): "NLL per pixel (one token for all its channels)",
    ("CharGPT", "test/nats_per_dim"): "NLL per character",
    ("Diffusion", "test/nats_per_dim"): "NLL per coordinate (density, probability-flow ODE)",
}


@dataclass(frozen=True)
class Measure:
    """One test figure: what it is, the metric it comes from, nats and bits."""

    label: str
    metric: str
    nats: float
    bits: float


def bits_metric(metric: str) -> str:
    """``test/nats_per_dim`` -> ``test/bits_per_dim``."""
    return metric.replace("nats_per", "bits_per")


def measures_of(metrics: dict[str, float], model: str) -> list[Measure]:
    """The figures of ``metrics`` (a run's ``test/*`` metrics) for a model of class
    ``model``, headline first; bits are the logged ones, or nats / ln 2."""
    found = []
    for metric, label in MEASURES.items():
        if metric not in metrics:
            continue
        nats = metrics[metric]
        bits = metrics.get(bits_metric(metric), nats / math.log(2))
        found.append(Measure(FAMILY_LABELS.get((model, metric), label), metric, nats, bits))
    return found
