"""Lightning modules, one file per model family."""

from genlab.lightning_modules.aae import AAE
from genlab.lightning_modules.autoregressive2d import Autoregressive2D
from genlab.lightning_modules.base import LikelihoodModel
from genlab.lightning_modules.char_gpt import CharGPT
from genlab.lightning_modules.diffusion import Diffusion
from genlab.lightning_modules.discrete1d import Histogram, LogisticMixture
from genlab.lightning_modules.gated_pixelcnn import GatedPixelCNN
from genlab.lightning_modules.igpt import IGPT
from genlab.lightning_modules.made import MADE
from genlab.lightning_modules.multimodal import Multimodal
from genlab.lightning_modules.pixelcnn import PixelCNN
from genlab.lightning_modules.vae import VAE
from genlab.lightning_modules.vq_prior import VQPrior
from genlab.lightning_modules.vqvae import VQVAE

__all__ = [
    "AAE",
    "Autoregressive2D",
    "CharGPT",
    "Diffusion",
    "GatedPixelCNN",
    "IGPT",
    "Histogram",
    "LikelihoodModel",
    "LogisticMixture",
    "MADE",
    "Multimodal",
    "PixelCNN",
    "VAE",
    "VQPrior",
    "VQVAE",
]
