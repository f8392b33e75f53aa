"""Callbacks, one picture each, for any model with the API they need."""

from genlab.callbacks.attention_maps import AttentionMaps
from genlab.callbacks.distribution_1d import Distribution1D
from genlab.callbacks.distribution_2d import Distribution2D
from genlab.callbacks.metrics_file import MetricsFile
from genlab.callbacks.multimodal_grid import MultimodalGrid
from genlab.callbacks.queries import QueryPanel
from genlab.callbacks.receptive_field import ReceptiveField
from genlab.callbacks.reconstructions import Reconstructions
from genlab.callbacks.sample_grid import SampleGrid
from genlab.callbacks.sample_writer import SampleWriter
from genlab.callbacks.sampling_speed import SamplingSpeed
from genlab.callbacks.text_samples import TextSamples
from genlab.callbacks.training_curves import TrainingCurves

__all__ = [
    "AttentionMaps",
    "Distribution1D",
    "Distribution2D",
    "MetricsFile",
    "MultimodalGrid",
    "QueryPanel",
    "ReceptiveField",
    "Reconstructions",
    "SampleGrid",
    "SampleWriter",
    "SamplingSpeed",
    "TextSamples",
    "TrainingCurves",
]
