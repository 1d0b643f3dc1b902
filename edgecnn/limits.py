"""Limits shared by the CLI, the export driver and the runtime, defined once (issue 15: one rule per quantity).

Everything a user or a bundle can set to a number is bounded here: an option outside its range is refused at parse
time with a one-line error, and a manifest outside them is refused before any SDK parses a byte.
"""

from __future__ import annotations

from edgecnn.errors import ConfigError

# Input resolution (square side, pixels): the smallest a CNN stem survives, the largest a device bundle sensibly has.
MIN_RESOLUTION = 8
MAX_RESOLUTION = 4096
# Intra-op threads for a runtime session, a benchmark or training's data loader.
MIN_THREADS = 1
MAX_THREADS = 1024
# top-k predictions shown or compared (ImageNet-21k has ~21,000 classes).
MAX_TOP_K = 100_000
# Decoded image size: Pillow's own bomb threshold (89 Mpx) rounded down; larger images are refused, not warned about.
MAX_IMAGE_PIXELS = 64_000_000
# Batch size in a manifest or on the command line.
MAX_BATCH = 4096

# Bundle manifests are untrusted input (docs/architecture.md, runtime layer).
MAX_MANIFEST_BYTES = 8 << 20  # ImageNet-21k labels fit in ~300 KB
MAX_JSON_DEPTH = 32
MAX_NAME_CHARS = 255  # one path component (NAME_MAX on Linux)
MAX_PATH_CHARS = 1024
MAX_FILES = 256
MAX_TENSORS = 64
MAX_RANK = 8
MAX_DIM = 1 << 20
MAX_TENSOR_ELEMENTS = 1 << 28
MAX_GOLDEN = 256
MAX_LABELS = 100_000
MAX_TEXT_CHARS = 4096


def check_int(value: int, lo: int, hi: int, what: str) -> int:
    """``value`` as an int in ``[lo, hi]``, else a :class:`ConfigError` naming ``what`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{what} must be an integer in {lo}..{hi}, got {value!r}")
    return value
