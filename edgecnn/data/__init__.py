"""Datasets, transforms and augmentations.

Everything here keeps images as uint8 pixels until the one evaluation transform
(:func:`edgecnn.runtime.preprocess.preprocess_image`) turns them into model inputs, so training, calibration and the
device runtime share a single definition of preprocessing. ``import edgecnn.data`` does not import torch.
"""
