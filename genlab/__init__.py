"""genlab: a PyTorch Lightning lab of deep generative models."""
