"""The models and their maths: networks, VGG, losses, image I/O, checkpoints, settings."""
