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
from genlab.datamodules.shapes import SHAPE_KINDS, ShapesDataModule, generate_shapes

__all__ = [
    "SHAPE_KINDS",
    "ImageDataModule",
    "InMemoryImages",
    "MNISTDataModule",
    "ShapesDataModule",
    "binarize",
    "colorize",
    "generate_shapes",
    "load_array_file",
    "quantize",
    "split_off_validation",
    "transform_images",
]
