"""Lightning modules, one file per model family."""

from genlab.lightning_modules.base import LikelihoodModel
from genlab.lightning_modules.discrete1d import Histogram, LogisticMixture
from genlab.lightning_modules.pixelcnn import PixelCNN

__all__ = ["Histogram", "LikelihoodModel", "LogisticMixture", "PixelCNN"]
