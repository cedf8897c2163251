"""The release of texture_nets (setup.cfg reads it; checkpoints and ONNX cache names record it)."""

__version__ = "0.1.0"
