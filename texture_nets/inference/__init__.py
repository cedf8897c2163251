"""Use a trained style: the engine, outputs, tiling, ONNX, video, optimisation, features."""
