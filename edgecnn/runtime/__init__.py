"""Device-side runtime: numpy plus one backend SDK, never torch."""

from edgecnn.runtime.preprocess import Preprocessing, preprocess_batch, preprocess_image

__all__ = ["Preprocessing", "preprocess_batch", "preprocess_image"]
