"""The ``edgecnn`` command line (click). Command modules import torch and SDKs inside their functions only."""
