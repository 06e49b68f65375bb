"""Inference runtime: engines (ONNX Runtime, OpenVINO) apart from model wrappers that own pre/post-processing."""
