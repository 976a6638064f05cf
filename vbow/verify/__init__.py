"""Geometric verification: per-image words and geometry, correspondences, RANSAC."""
