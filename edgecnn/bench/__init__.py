"""Measured latency, environment fingerprint, results I/O, per-layer profiling, and the latency estimator.

Measured (``edgecnn bench``): :mod:`runners` (bundles via edgecnn.runtime, PyTorch baselines), :mod:`measure`
(first inference, percentiles, RSS, warnings), :mod:`results` (JSON/CSV/table), :mod:`perlayer` (ORT profiler and
OpenVINO performance counters mapped to model layers), :mod:`plot`.
Predicted (``edgecnn profile``): :mod:`roofline` (a model as costed ops), :mod:`estimate` (per-layer roofline on a
hardware profile from ``edgecnn.profiles``), :mod:`fit_profile`, :mod:`fit_blocks`, :mod:`fit_int8` (micro-benchmarks
here → a local profile fitted to them).
Importing this package loads neither torch nor a runtime SDK; each module imports them where it needs them.
"""
