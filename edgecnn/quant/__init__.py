"""Calibration, post-training quantization per target, QAT, quantization reports (issue: compression)."""
