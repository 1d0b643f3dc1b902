"""Device-side runtime: numpy plus one backend SDK, never torch.

from edgecnn import runtime
sess = runtime.load("bundle/")            # verifies manifest, files, hashes
sess.predict_image("cat.jpg", top_k=5)    # the bundle's own preprocessing
"""

from edgecnn.runtime.bundle import Bundle, open_bundle
from edgecnn.runtime.manifest import Manifest, TensorSpec
from edgecnn.runtime.preprocess import Preprocessing, preprocess_batch, preprocess_image
from edgecnn.runtime.session import Prediction, Session, load

__all__ = [
    "Bundle",
    "Manifest",
    "Prediction",
    "Preprocessing",
    "Session",
    "TensorSpec",
    "load",
    "open_bundle",
    "preprocess_batch",
    "preprocess_image",
]
