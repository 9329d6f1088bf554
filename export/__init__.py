"""Export and quantization to ONNX and TFLite in one verified bundle (``python -m export``)."""
