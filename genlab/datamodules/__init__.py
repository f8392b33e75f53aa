"""Data modules: each yields batches in the layout the models expect (see DESIGN.md)."""

from genlab.datamodules.images import (
    ImageDataModule,
    InMemoryImages,
    binarize,
    colorize,
    quantize,
    split_off_validation,
    transform_images,
)
from genlab.datamodules.mnist import MNISTDataModule, load_array_file
from genlab.datamodules.multimodal import CaptionedMNISTDataModule, WordVocabulary
from genlab.datamodules.points import DATASETS, PointsDataModule
from genlab.datamodules.shapes import SHAPE_KINDS, ShapesDataModule, generate_shapes
from genlab.datamodules.text import CharVocabulary, TextDataModule
from genlab.datamodules.toy1d import PRESETS, Mixture1D, Toy1DDataModule
from genlab.datamodules.toy2d import Toy2DDataModule, load_density, procedural_density

__all__ = [
    "SHAPE_KINDS",
    "CaptionedMNISTDataModule",
    "WordVocabulary",
    "CharVocabulary",
    "TextDataModule",
    "ImageDataModule",
    "InMemoryImages",
    "MNISTDataModule",
    "PointsDataModule",
    "DATASETS",
    "Mixture1D",
    "PRESETS",
    "ShapesDataModule",
    "Toy1DDataModule",
    "Toy2DDataModule",
    "load_density",
    "procedural_density",
    "binarize",
    "colorize",
    "generate_shapes",
    "load_array_file",
    "quantize",
    "split_off_validation",
    "transform_images",
]
