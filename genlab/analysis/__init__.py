"""Functions for notebooks and callbacks; they use models only through the public API."""

from genlab.analysis.attention import (
    attention_from,
    attention_maps,
    head_average,
    plot_attention_heatmaps,
    plot_attention_on_text,
    token_labels,
)
from genlab.analysis.diffusion import (
    SteeringResult,
    plot_classes,
    plot_forward_trajectory,
    plot_log_probs,
    plot_reverse_trajectories,
    plot_sample_seeds,
    plot_samples_by_steps,
    plot_schedules,
    plot_steering,
    steer,
)
from genlab.analysis.inversion import (
    InversionResult,
    InversionStep,
    format_inversion,
    invert_embeddings,
)
from genlab.analysis.likelihood import mean_nats_per_dim
from genlab.analysis.queries import (
    Estimate,
    first_pixel_marginal,
    middle_given_above_left,
    middle_given_all_others,
    middle_given_below_right,
    middle_pixel,
    middle_pixel_marginal,
    pixel_given_all_others,
    sample_bottom_given_top,
    sample_in_raster_order,
    sample_top_given_bottom,
)
from genlab.analysis.receptive_field import input_gradient, receptive_field
from genlab.analysis.text import SentenceScore, TokenScore, sentence_log_prob
from genlab.analysis.timing import decoding_step_seconds

__all__ = [
    "Estimate",
    "InversionResult",
    "InversionStep",
    "SentenceScore",
    "SteeringResult",
    "TokenScore",
    "attention_from",
    "attention_maps",
    "decoding_step_seconds",
    "first_pixel_marginal",
    "format_inversion",
    "head_average",
    "input_gradient",
    "invert_embeddings",
    "mean_nats_per_dim",
    "middle_given_above_left",
    "middle_given_all_others",
    "middle_given_below_right",
    "middle_pixel",
    "middle_pixel_marginal",
    "pixel_given_all_others",
    "plot_classes",
    "plot_forward_trajectory",
    "plot_log_probs",
    "plot_reverse_trajectories",
    "plot_sample_seeds",
    "plot_samples_by_steps",
    "plot_schedules",
    "plot_steering",
    "plot_attention_heatmaps",
    "plot_attention_on_text",
    "receptive_field",
    "sample_bottom_given_top",
    "sample_in_raster_order",
    "sample_top_given_bottom",
    "sentence_log_prob",
    "steer",
    "token_labels",
]
