"""What the user asks of INT8 quantization, validated before any work starts (no SDK imported here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import ConfigError
from edgecnn.quant.samples import DEFAULT_SAMPLES, SampleSet, load_samples

EVAL_SAMPLES = 1000

if TYPE_CHECKING:
    from edgecnn.quant.qat import QatModel


class CalibMethod(StrEnum):
    """Activation-range estimators: ``mse`` (the default) = per tensor, the range that minimises the expected
    quantization error on the calibration histogram (:mod:`edgecnn.quant.ranges` for ONNX Runtime, NNCF's
    ``HISTOGRAM`` estimator for OpenVINO); ``minmax`` = ONNX Runtime's MinMax / NNCF's preset estimators (the
    previous default); ``entropy``, ``percentile`` = ONNX Runtime's calibrators (onnx and tensorrt targets only)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"
    MSE = "mse"


class Rounding(StrEnum):
    """How float weights become int8: ``gptq`` = error-compensated on calibration data (:mod:`edgecnn.quant.rounding`,
    the default), ``nearest`` = each weight to its nearest level (what the backends do alone)."""

    GPTQ = "gptq"
    NEAREST = "nearest"


class Preset(StrEnum):
    """NNCF presets: ``performance`` = symmetric weights and activations, ``mixed`` = asymmetric activations."""

    PERFORMANCE = "performance"
    MIXED = "mixed"


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """INT8 post-training quantization settings; the defaults are edgecnn's "fast and safe" choice.

    ``max_drop`` is the accepted top-1 drop in percentage points on ``evaluation`` (None: no budget).
    ``keep_float`` names layers (module paths, as the report's "layer" column) or graph nodes (ONNX node names /
    OpenVINO op names) that stay in float; an unknown name is an error before quantization starts.
    ``rounding`` is how weights reach int8 (GPTQ by default: Lite0's output SQNR 18 → 25 dB, quant_lite0.md), with
    its statistics on the first ``rounding_samples`` calibration samples and, with ``rounding_bias_correction``, the
    mean output shift of the rounding removed from each layer's bias (every target, :mod:`edgecnn.quant.rounding`).
    ``bias_correction`` is NNCF's (openvino; fast, or full with ``fast_bias_correction=False``), on top of it.
    ``overflow_fix`` is NNCF's 7-bit first-layer weights for x86 CPUs without VNNI (int16 saturation in
    ``vpmaddubsw``); off by default (VNNI/AMX x86 and ARM need no fix; the bundle's golden self-test catches a
    device that does), because it costs Lite0 6 dB of output SQNR.
    ``per_channel=False`` reproduces the naive per-tensor failure (benchmarks/quant_fragile.py) and is the constraint of
    accelerators whose int8 kernels take one weight scale per tensor — QAT is the way to meet it.
    ``per_channel_activations`` (openvino) lets NNCF give depthwise-conv inputs one activation range per channel;
    off by default: each channel's range is then the extreme of that channel over the calibration images, which a
    few dozen images underestimate (issue 20: 12 photos took Lite0's output SQNR from 27 to 18 dB; per-tensor
    ranges pool every channel, as the onnx path does — benchmarks/results/quant_calib_size.md).
    ``qat`` is a fine-tuned QAT model (:mod:`edgecnn.quant.qat`): exported with its learned scales, no calibration.
    """

    calibration: SampleSet
    method: CalibMethod = CalibMethod.MSE
    per_channel: bool = True
    max_drop: float | None = None
    evaluation: SampleSet | None = None
    preset: Preset = Preset.PERFORMANCE
    fast_bias_correction: bool = True
    bias_correction: bool = True
    keep_float: tuple[str, ...] = ()
    rounding: Rounding = Rounding.GPTQ
    rounding_samples: int = 300
    rounding_bias_correction: bool = True
    overflow_fix: bool = False
    per_channel_activations: bool = False
    qat: QatModel | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.calibration, SampleSet):
            raise ConfigError("quantization needs a calibration SampleSet (see edgecnn.quant.samples)")
        if self.qat is not None:
            self.check_qat()
        if self.max_drop is not None:
            if not 0 <= self.max_drop < 100:
                raise ConfigError(f"--max-drop must be in [0, 100) top-1 points, got {self.max_drop}")
            ev = self.evaluation
            if ev is None or ev.labels is None:
                raise ConfigError(
                    "--max-drop needs labelled evaluation data",
                    hint="pass --eval-data (a class-per-folder directory, 'embedded', or a .npz with 'y')",
                )

    def check_qat(self) -> None:
        """QAT keeps every layer quantized with the ranges it learned: the PTQ-only settings do not apply."""
        if self.max_drop is not None:
            raise ConfigError(
                "--max-drop is post-training quantization's float fallback; QAT keeps every layer quantized",
                hint="leave --max-drop out with --qat-epochs (the report shows the drop)",
            )
        if self.keep_float:
            raise ConfigError("--keep-float is not supported with QAT", hint="leave --keep-float out with --qat-epochs")
        if self.method not in (CalibMethod.MINMAX, CalibMethod.MSE):
            raise ConfigError(
                f"--method {self.method} picks ONNX Runtime's calibrator; QAT starts from NNCF ranges and learns them",
                hint="leave --method out with --qat-epochs",
            )

    def record(self) -> dict[str, Any]:
        return {
            "method": str(self.method),
            "per_channel": self.per_channel,
            "max_drop": self.max_drop,
            "preset": str(self.preset),
            "bias_correction": self.bias_correction,
            "keep_float_requested": list(self.keep_float),
            "rounding": str(self.rounding),
            "rounding_samples": min(self.rounding_samples, len(self.calibration)),
            "rounding_bias_correction": self.rounding_bias_correction,
            "calibration": self.calibration.record(),
            "evaluation": None if self.evaluation is None else self.evaluation.record(),
        }


def evaluation_transform(net: Any, resolution: int | None) -> Any:
    """The model's evaluation transform at the export resolution (never a training transform)."""
    pre = getattr(net, "preprocessing", None)
    if pre is not None and resolution and pre.input_size != resolution:
        pre = pre.at_resolution(resolution)
    return pre


def make_config(
    net: Any,
    calib_data: str | SampleSet,
    *,
    eval_data: str | SampleSet | None = None,
    method: str = "mse",
    samples: int = DEFAULT_SAMPLES,
    max_drop: float | None = None,
    resolution: int | None = None,
    keep_float: tuple[str, ...] = (),
    seed: int = 0,
    per_channel: bool = True,
    rounding: str = "gptq",
) -> QuantConfig:
    try:
        meth = CalibMethod(method)
    except ValueError:
        raise ConfigError(f"unknown --method {method!r}", hint="one of mse, minmax, entropy, percentile") from None
    try:
        rnd = Rounding(rounding)
    except ValueError:
        raise ConfigError(f"unknown rounding {rounding!r}", hint="one of gptq, nearest") from None
    pre = evaluation_transform(net, resolution)
    if isinstance(calib_data, SampleSet):
        calib = calib_data
    else:
        calib = load_samples(calib_data, pre, samples=samples, seed=seed)
    ev = None
    if eval_data is not None:
        ev = (
            eval_data
            if isinstance(eval_data, SampleSet)
            else load_samples(eval_data, pre, samples=EVAL_SAMPLES, seed=seed + 1, split="test")
        )
    if ev is not None:
        ev = match_classes(ev, getattr(net, "classes", None))
    return QuantConfig(
        calibration=calib,
        method=meth,
        max_drop=max_drop,
        evaluation=ev,
        keep_float=keep_float,
        per_channel=per_channel,
        rounding=rnd,
    )


def match_classes(ev: SampleSet, model_classes: Any) -> SampleSet:
    """Folder labels are indices into the folder's sorted class names; accuracy needs them as indices into the
    model's labels. Relabel by name, and refuse a folder whose class names are none of the model's (it used to
    report "top-1 0.00 → 0.00 %")."""
    if ev.labels is None or not ev.classes or not model_classes:
        return ev
    model_classes = list(model_classes)
    if list(ev.classes) == model_classes[: len(ev.classes)]:
        return ev
    index = {name: i for i, name in enumerate(model_classes)}
    known = [name for name in ev.classes if name in index]
    if not known:
        raise ConfigError(
            f"evaluation data {ev.source}: none of its class folders {list(ev.classes)[:5]} is one of the model's "
            f"labels {model_classes[:5]}",
            hint="name the class folders as the model's labels (see `edgecnn inspect` of a bundle or the checkpoint)",
        )
    keep = np.asarray([ev.classes[int(label)] in index for label in ev.labels])
    labels = np.asarray([index.get(ev.classes[int(label)], -1) for label in ev.labels], np.int64)[keep]
    return dataclasses.replace(ev, data=ev.data[keep], labels=labels, classes=tuple(model_classes))
