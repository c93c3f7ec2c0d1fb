"""Trained encoders at work: embeddings of audio files and exports to ONNX and MLflow."""
