"""Plain PyTorch building blocks; nothing here imports the rest of genlab."""
