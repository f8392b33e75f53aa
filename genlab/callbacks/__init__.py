"""Callbacks, one picture each, for any model with the API they need."""

from genlab.callbacks.attention_maps import AttentionMaps
from genlab.callbacks.code_scatter import CodeScatter
from genlab.callbacks.compile import CompileNetworks
from genlab.callbacks.diffusion_classes import ClassPanels
from genlab.callbacks.diffusion_likelihood import LogProbPoints
from genlab.callbacks.diffusion_samples import SamplesBySteps, SampleSeeds
from genlab.callbacks.diffusion_trajectories import (
    ForwardTrajectory,
    ReverseTrajectories,
    Steering,
)
from genlab.callbacks.distribution_1d import Distribution1D
from genlab.callbacks.distribution_2d import Distribution2D
from genlab.callbacks.latent_manifold import LatentManifold
from genlab.callbacks.loss_curves import LossCurves
from genlab.callbacks.metrics_file import MetricsFile
from genlab.callbacks.multimodal_grid import MultimodalGrid
from genlab.callbacks.queries import QueryPanel
from genlab.callbacks.receptive_field import ReceptiveField
from genlab.callbacks.reconstructions import Reconstructions
from genlab.callbacks.sample_grid import SampleGrid
from genlab.callbacks.sample_writer import SampleWriter
from genlab.callbacks.sampling_speed import SamplingSpeed
from genlab.callbacks.schedules import ScheduleCurves
from genlab.callbacks.text_analyses import EmbeddingInversion, SentenceLogProbs
from genlab.callbacks.text_samples import TextSamples
from genlab.callbacks.training_curves import TrainingCurves

__all__ = [
    "AttentionMaps",
    "ClassPanels",
    "CodeScatter",
    "CompileNetworks",
    "Distribution1D",
    "Distribution2D",
    "EmbeddingInversion",
    "ForwardTrajectory",
    "LogProbPoints",
    "LossCurves",
    "LatentManifold",
    "MetricsFile",
    "MultimodalGrid",
    "QueryPanel",
    "ReceptiveField",
    "ReverseTrajectories",
    "Reconstructions",
    "SampleGrid",
    "SampleSeeds",
    "SamplesBySteps",
    "SampleWriter",
    "SamplingSpeed",
    "SentenceLogProbs",
    "ScheduleCurves",
    "Steering",
    "TextSamples",
    "TrainingCurves",
]
