"""Scoring a trained model: held-out constraint accuracy and held-out preference accuracy."""
