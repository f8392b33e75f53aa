"""Lightning modules, one file per model family."""

from genlab.lightning_modules.base import LikelihoodModel
from genlab.lightning_modules.pixelcnn import PixelCNN

__all__ = ["LikelihoodModel", "PixelCNN"]
