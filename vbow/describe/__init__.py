"""Describing images: decoding, local features, colour signatures (OpenCV lives here)."""
