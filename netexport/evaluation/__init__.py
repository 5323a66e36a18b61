"""Accuracy of exported artifacts on real, labelled data (trained models, not random weights)."""
