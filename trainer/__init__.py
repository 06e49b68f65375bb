"""Shelfwatch trainer: few-shot training, honest evaluation, ONNX/OpenVINO export, signed bundles, REST service."""
