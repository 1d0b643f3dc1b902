"""Typed exceptions: every user-facing failure is one of these (docs/architecture.md, principle 10).

Each error carries a one-line message saying what went wrong and where, plus an optional ``hint`` saying how to fix
it. The CLI prints ``error: <message> (<hint>)`` and exits non-zero; tracebacks only appear with ``--debug``.
"""

from __future__ import annotations


class EdgeCNNError(Exception):
    """Base of every error edgecnn raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UnknownNameError(EdgeCNNError, KeyError):
    """A name (model, target, profile, option) that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return EdgeCNNError.__str__(self)


class DuplicateNameError(EdgeCNNError):
    """A registry entry registered twice."""


class ConfigError(EdgeCNNError, ValueError):
    """An invalid option value or combination."""


class ArchSpecError(ConfigError):
    """An architecture string or block specification that does not parse."""


class MissingDependencyError(EdgeCNNError, ImportError):
    """An optional SDK is not installed; the message names the pip extra that brings it."""


class WeightsError(EdgeCNNError):
    """A weights file that cannot be read or does not fit the model."""


class WeightsFormatError(WeightsError):
    """Unreadable, truncated, LFS-pointer or unrecognized weights file."""


class WeightsMismatchError(WeightsError):
    """The weights do not fit the model: missing, unexpected or misshapen keys."""


class PruningError(ConfigError):
    """A pruning setting that cannot be met (a ratio out of range, a layer that cannot be pruned, a budget below what
    the model can reach); the message gives the best reachable figure."""


class InputSpecError(EdgeCNNError, ValueError):
    """An input (array, image, resolution) that does not fit what the model or bundle expects."""


class BundleError(EdgeCNNError):
    """A deployment bundle that cannot be trusted or used."""


class ManifestError(BundleError):
    """manifest.json missing, unparsable, or not matching the schema."""


class BundleIntegrityError(BundleError):
    """A bundle file that is missing, truncated, tampered with, an LFS pointer, or outside the bundle."""


class ExportError(EdgeCNNError):
    """An export that failed; nothing is left at the destination."""


class ParityError(ExportError):
    """The exported artifact does not reproduce the PyTorch model within the precision's tolerance."""


class BackendError(EdgeCNNError):
    """A runtime backend that cannot load or run a bundle on this device."""


class AccuracyBudgetError(ExportError):
    """The ``--max-drop`` budget cannot be met even with sensitive layers in float (the best result is shown)."""
