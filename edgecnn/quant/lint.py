"""Quantization-risk lint: what is known to break INT8 PTQ on mobile CNNs, found before quantizing, each with a
concrete recommendation.

Rules and where they come from:

* ``depthwise-range`` — depthwise convs whose per-channel weight ranges (after BN folding) differ by orders of
  magnitude collapse under per-tensor weights (Krishnamoorthi 2018, §3; Nagel et al. 2019 "Data-free
  quantization", Fig. 2 on MobileNetV2): keep per-channel weights (edgecnn's default) or equalize ranges.
* ``sensitive-activation`` — SiLU / Sigmoid gates and squeeze-excite multiplies quantize badly (NNCF's and ONNX
  Runtime's guides; the EfficientNet-Lite variants drop SE and swap SiLU for ReLU6 for this reason, Google 2020).
* ``hardswish-opset`` — HardSwish is an ONNX op from opset 14; below it the exporter decomposes it into
  HardSigmoid × x, a multiply whose two inputs get separate INT8 ranges.
* ``bias-correction`` — MobileNetV3-style nets (hardswish + SE) lose up to 16 top-1 points without bias
  correction (NNCF's published reference data).
* ``calibration-size`` — fewer than 300 calibration samples (ONNX Runtime / NNCF default subset) give noisy ranges.
* ``calibration-duplicates`` / ``calibration-coverage`` — copies or mirror images in the calibration set, and
  calibration activations that do not reach the ranges the evaluation data does (:mod:`edgecnn.quant.calib_check`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgecnn.quant.calib_check import POOR_COVERAGE, CalibrationCheck
from edgecnn.quant.samples import DEFAULT_SAMPLES

DEPTHWISE_RANGE_RATIO = 100.0  # max/min per-channel |w| above which per-tensor int8 leaves channels at 0-2 levels


@dataclass(frozen=True, kw_only=True)
class Finding:
    code: str
    severity: str  # "error" | "warning" | "info"
    layers: tuple[str, ...]
    message: str
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "layers": list(self.layers),
            "message": self.message,
            "recommendation": self.recommendation,
        }


def folded_channel_ranges(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> torch.Tensor:
    """max |w| per output channel after folding ``bn`` into ``conv`` (what the exported graph quantizes)."""
    w = conv.weight.detach().flatten(1).abs().amax(dim=1)
    if bn is not None:
        w = w * (bn.weight.detach().abs() / torch.sqrt(bn.running_var + bn.eps))
    return w


def _conv_bn_pairs(model: nn.Module) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d | None]]:
    mods = list(model.named_modules())
    out = []
    for i, (name, m) in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            nxt = mods[i + 1][1] if i + 1 < len(mods) else None
            out.append((name, m, nxt if isinstance(nxt, nn.BatchNorm2d) else None))
    return out


def lint_model(
    model: nn.Module,
    *,
    per_channel: bool = True,
    opset: int = 18,
    calibration_samples: int | None = None,
    bias_correction: bool = True,
    qat: bool = False,
    calibration: CalibrationCheck | None = None,
    cpu_flags: list[str] | None = None,
) -> list[Finding]:
    """Findings for ``model`` under the given quantization settings, most severe first (``qat``: the weights will
    be fine-tuned with their quantizers, which is how a per-tensor-only target copes with wide ranges;
    ``calibration``: the calibration-set diagnostics, whose count replaces ``calibration_samples``)."""
    if calibration is not None:
        calibration_samples = calibration.samples
    findings: list[Finding] = []
    wide: list[str] = []
    worst = 0.0
    for name, conv, bn in _conv_bn_pairs(model):
        if conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels:
            r = folded_channel_ranges(conv, bn)
            ratio = float(r.max() / r.min().clamp_min(1e-12))
            if ratio > DEPTHWISE_RANGE_RATIO:
                wide.append(name)
                worst = max(worst, ratio)
    if wide:
        findings.append(
            Finding(
                code="depthwise-range",
                severity="info" if per_channel else ("warning" if qat else "error"),
                layers=tuple(wide),
                message=f"{len(wide)} depthwise conv(s) have per-channel weight ranges up to {worst:.0f}× apart "
                f"after BN folding",
                recommendation=(
                    "per-tensor QAT fine-tunes these layers to one scale each; check the reported top-1 drop"
                    if qat and not per_channel
                    else "keep per-channel weights (edgecnn's default); per-tensor int8 would zero most channels of "
                    "these layers" + ("" if per_channel else " — drop --per-tensor, or fine-tune with --qat-epochs")
                ),
            )
        )
    gates = [n for n, m in model.named_modules() if isinstance(m, (nn.SiLU, nn.Sigmoid, nn.Hardsigmoid))]
    se = [n for n, m in model.named_modules() if type(m).__name__ == "SqueezeExcite"]
    if gates or se:
        findings.append(
            Finding(
                code="sensitive-activation",
                severity="warning",
                layers=tuple(se or gates),
                message=f"{len(gates)} SiLU/Sigmoid gate(s) and {len(se)} squeeze-excite multiply(ies) are "
                "quantization-sensitive",
                recommendation="quantize with --max-drop so sensitive layers can stay float, or deploy the Lite "
                "variant (ReLU6, no SE) of the architecture",
            )
        )
    hswish = [n for n, m in model.named_modules() if isinstance(m, nn.Hardswish)]
    if hswish and opset < 14:
        findings.append(
            Finding(
                code="hardswish-opset",
                severity="warning",
                layers=tuple(hswish),
                message=f"opset {opset} has no HardSwish: {len(hswish)} hardswish layer(s) export as HardSigmoid × x",
                recommendation="export with --opset 14 or newer (edgecnn's default is 18)",
            )
        )
    if hswish and se and not bias_correction:
        findings.append(
            Finding(
                code="bias-correction",
                severity="error",
                layers=(),
                message="a MobileNetV3-style net (hardswish + SE) quantized without bias correction loses up to 16 "
                "top-1 points (NNCF reference data)",
                recommendation="keep bias correction on (the default)",
            )
        )
    if calibration_samples is not None and calibration_samples < DEFAULT_SAMPLES:
        findings.append(
            Finding(
                code="calibration-size",
                severity="warning",
                layers=(),
                message=f"{calibration_samples} calibration samples (< {DEFAULT_SAMPLES})"
                + ("" if calibration is None else f", {calibration.distinct} distinct image(s)"),
                recommendation=calibration.recommendation
                if calibration is not None
                else f"calibrate on {DEFAULT_SAMPLES}+ representative images through the evaluation transform "
                "(--samples)",
            )
        )
    findings += _calibration_findings(calibration)
    findings += _cpu_findings(cpu_flags)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order[f.severity])


def _calibration_findings(check: CalibrationCheck | None) -> list[Finding]:
    """Duplicates in the calibration set and poor coverage of the evaluation data's activation ranges."""
    if check is None:
        return []
    out = []
    if check.distinct < check.samples:
        out.append(
            Finding(
                code="calibration-duplicates",
                severity="warning",
                layers=(),
                message=f"{check.samples - check.distinct} of {check.samples} calibration samples are copies or "
                "mirror images of others",
                recommendation="replace them with other representative images (a copy adds no new range)",
            )
        )
    cov = check.coverage
    if cov and cov.get("tensors") and cov["median_range_covered"] < POOR_COVERAGE:
        out.append(
            Finding(
                code="calibration-coverage",
                severity="warning",
                layers=(cov["worst_tensor"],),
                message=f"calibration activations cover a median {100 * cov['median_range_covered']:.0f} % of the "
                f"evaluation data's ranges (worst {100 * cov['worst_range_covered']:.0f} % at {cov['worst_tensor']}); "
                f"{100 * cov['evaluation_values_outside']:.2f} % of evaluation values fall outside",
                recommendation="calibrate on images like the evaluation data (same scenes, framing and lighting)",
            )
        )
    return out


def _cpu_findings(cpu_flags: list[str] | None) -> list[Finding]:
    """``cpu_flags`` of the machine that quantizes and measures (None: not judged)."""
    from edgecnn.runtime.env import int8_saturates

    if cpu_flags is None or not int8_saturates(cpu_flags):
        return []
    return [
        Finding(
            code="cpu-int8-saturation",
            severity="warning",
            layers=(),
            message="this x86 CPU has no VNNI/AMX: ONNX Runtime's and OpenVINO's int8 convolutions add u8×s8 byte "
            "pairs in int16 and saturate, so the int8 figures and golden vectors measured here are worse than the "
            "Q/DQ model itself (EfficientNet-Lite0: output SQNR 8 dB instead of 26 dB)",
            recommendation="judge accuracy on the deployment CPU (VNNI/AMX x86, ARM): the bundle's self-test there "
            "compares with these goldens; on a CPU like this one, prefer the fp32/fp16 bundle",
        )
    ]
