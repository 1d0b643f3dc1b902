"""Quantization-aware training (QAT) with NNCF for torch models, exported with the scales it learned.

The flow follows NNCF 3.x's torch QAT recipe ("Quantization-aware Training (QAT) with PyTorch", OpenVINO docs:
``nncf.quantize`` the float module, then fine-tune the returned module as usual):

1. **Fold BatchNorm into the convolutions** (frozen statistics — Jacob et al. 2018 §3.2, Krishnamoorthi 2018 §3.2).
   The weights QAT learns are then the weights the device runs, and a per-tensor weight scale stays per-tensor on
   the device: a BN folded *after* quantization would rescale every output channel of the int8 weights.
2. **``nncf.quantize``** the folded module on the calibration set: NNCF places its fake quantizers (symmetric int8
   weights, per-channel or per-tensor; per-tensor activations, symmetric in the ``performance`` preset) and
   initialises their ranges (min/max + fast bias correction). This is the PTQ starting point.
3. **Fine-tune** weights and quantizer scales together for a few epochs on the trainer's step loop
   (:class:`edgecnn.train.loop.StepLoop`): AdamW, cosine from ``lr`` to 0 (:func:`edgecnn.train.optim.lr_at`),
   knowledge distillation from the float model (Hinton et al. 2015, :func:`edgecnn.train.distill.objective`) mixed
   with the labels. Inputs are the evaluation transform's (no augmentation: a short fine-tune of a trained model
   toward its own float function).
4. **Export** (:mod:`edgecnn.quant.qat_export`) as QDQ ONNX carrying the learned scales, for ``onnx`` /
   ``tensorrt``, and converted to OpenVINO IR for ``openvino``: nothing is calibrated after fine-tuning.

NNCF's CPU fake-quantize kernels are a C++ extension compiled on first use (about a minute on a loaded 2-core box,
then cached under ``~/.cache/torch_extensions``); edgecnn raises NNCF's 60 s load timeout so that a slow first
build does not fail the run.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.quant.samples import SampleSet
from edgecnn.train.distill import objective
from edgecnn.train.loop import StepLoop
from edgecnn.train.optim import schedule
from edgecnn.train.recipe import OptimConfig

log = logging.getLogger(__name__)
CALIB_BATCH = 32
EVAL_BATCH = 256
EXTENSION_TIMEOUT_S = "900"
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class QatConfig:
    """How to fine-tune. ``distill_alpha`` weighs the KL term to the float model's outputs (1 = teacher only, labels
    unused; 0 = labels only); ``lr`` is AdamW's peak rate, decayed by cosine to 0 over ``epochs``."""

    epochs: int = 2
    lr: float = 1e-4
    batch_size: int = 64
    weight_decay: float = 0.0
    distill_alpha: float = 0.5
    temperature: float = 2.0
    label_smoothing: float = 0.0
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"--qat-epochs must be an integer >= 1, got {self.epochs!r}")
        if not self.lr > 0:
            raise ConfigError(f"--qat-lr must be > 0, got {self.lr}", hint="e.g. 1e-4 (fine-tuning rate)")
        if self.batch_size < 1:
            raise ConfigError(f"QAT batch size must be >= 1, got {self.batch_size}")
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1 or self.temperature <= 0:
            raise ConfigError("QAT weight_decay must be >= 0, label_smoothing in [0, 1) and temperature > 0")
        if not 0 <= self.distill_alpha <= 1:
            raise ConfigError(f"--distill must be in [0, 1], got {self.distill_alpha}", hint="0 = labels only")

    def record(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "lr": self.lr,
            "schedule": "cosine to 0, no warm-up",
            "optimizer": "adamw",
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "distill": {"alpha": self.distill_alpha, "temperature": self.temperature, "teacher": "the fp32 model"},
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
        }


@dataclass(frozen=True, kw_only=True)
class QatModel:
    """A fake-quantized module (NNCF, BN folded) and what made it. ``scheme`` says what its quantizers are."""

    module: nn.Module
    scheme: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)


def _nncf() -> Any:
    from edgecnn.sdk import import_sdk

    # NNCF gives its first C++ kernel build 60 s, which a loaded 2-core machine exceeds; a user's setting wins.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", EXTENSION_TIMEOUT_S)
    return import_sdk("nncf", "all")  # missing → MissingDependencyError naming the extra


@contextmanager
def _quiet() -> Iterator[None]:
    """NNCF prints progress bars and its log to stdout, which is for results here (``--json``): send them to
    stderr, and keep its warnings out of the way."""
    from nncf.common.logging.logger import stdout_handler

    old = stdout_handler.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if old is not None:
            stdout_handler.setStream(old)


def quiet_nncf(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with NNCF imported (timeout set) and its console output on stderr (see ``_quiet``)."""

    @functools.wraps(fn)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        _nncf()
        with _quiet():
            return fn(*args, **kwargs)

    return wrapped


def fold_batchnorm(net: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``net`` (eval mode) with every ``conv → bn`` pair (edgecnn's ConvBNAct) folded into the conv."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(net).eval()
    n = 0
    for m in folded.modules():
        conv, bn = getattr(m, "conv", None), getattr(m, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            m.conv, m.bn = fuse_conv_bn_eval(conv, bn), nn.Identity()
            n += 1
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    if left:
        log.warning("%d BatchNorm layer(s) are not in a conv→bn pair and stay unfolded (frozen) during QAT", left)
    return folded, n


def quantizers(module: nn.Module) -> list[tuple[str, Any]]:
    """NNCF's fake quantizers of ``module`` by hook name. Weight quantizers are the narrow-range ones (NNCF's
    hardware configs give weights [-127, 127] and activations the full 256 levels)."""
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer

    return [(n, m) for n, m in get_hook_storage(module).named_hooks() if isinstance(m, BaseQuantizer)]


def quantizer_ranges(module: nn.Module) -> list[dict[str, Any]]:
    """Each quantizer's range as ONNX Quantize/DequantizeLinear writes it: scale, zero point, integer type."""
    from nncf.torch.quantization.quantize_functions import get_scale_zp_from_input_low_input_high

    out = []
    with torch.no_grad():
        for name, q in quantizers(module):
            lo, hi = q.get_input_low_input_high()
            scale, zp = get_scale_zp_from_input_low_input_high(q.level_low, q.level_high, lo, hi)
            out.append(
                {
                    "name": name,
                    "weights": bool(q.narrow_range),
                    "per_channel": bool(q.per_channel),
                    "signed": bool(q.level_low < 0),
                    "scale": scale.detach().numpy().astype(np.float32).reshape(-1),
                    "zero_point": zp.detach().numpy().reshape(-1),
                    "input_low": lo.detach().numpy().reshape(-1),
                    "input_high": hi.detach().numpy().reshape(-1),
                }
            )
    return out


def describe_scheme(module: nn.Module) -> dict[str, Any]:
    """What the quantizers are, in the words of the manifest's ``weights`` / ``activations`` fields."""
    from nncf.torch.quantization.layers import SymmetricQuantizer

    qs = quantizers(module)
    w = [q for _, q in qs if q.narrow_range]
    a = [q for _, q in qs if not q.narrow_range]
    gran = {"per-channel" if q.per_channel else "per-tensor" for q in w}
    kinds = {
        ("symmetric " + ("int8" if q.level_low < 0 else "uint8")) if isinstance(q, SymmetricQuantizer) else "uint8 asym"
        for q in a
    }
    return {
        "weights": "int8 symmetric " + "/".join(sorted(gran)),
        "activations": "per-tensor " + " + ".join(sorted(kinds)),
        "weight_quantizers": len(w),
        "activation_quantizers": len(a),
        "signed_activations": all(q.level_low < 0 for q in a),
        "symmetric": all(isinstance(q, SymmetricQuantizer) for _, q in qs),
        "per_channel": bool(w) and all(q.per_channel for q in w),
    }


@quiet_nncf
def insert_quantizers(
    folded: nn.Module,
    calibration: SampleSet,
    *,
    per_channel: bool = True,
    signed_activations: bool = False,
    preset: str = "performance",
    bias_correction: bool = True,
    overflow_fix: bool = False,
) -> nn.Module:
    """``nncf.quantize`` on the (BN-folded) torch module: fake quantizers with initial ranges — the PTQ starting
    point of QAT. ``signed_activations`` makes every activation quantizer signed int8 with zero point 0 (TensorRT's
    explicit-quantization rule); NNCF's hardware configs cannot force it, so it is set on the quantizers after.
    ``overflow_fix`` is NNCF's 7-bit first layer for x86 without VNNI (off, as for edgecnn's PTQ: QuantConfig)."""
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )

    data = calibration.data
    batches = [torch.from_numpy(data[i : i + CALIB_BATCH]) for i in range(0, len(data), CALIB_BATCH)]
    adv = AdvancedQuantizationParameters(
        weights_quantization_params=QuantizationParameters(per_channel=per_channel),
        activations_quantization_params=QuantizationParameters(per_channel=False),
        disable_bias_correction=not bias_correction,
        overflow_fix=OverflowFix.FIRST_LAYER if overflow_fix else OverflowFix.DISABLE,
    )
    mode = nncf.QuantizationPreset.MIXED if preset == "mixed" and not signed_activations else None
    qmodel = nncf.quantize(
        folded,
        nncf.Dataset(batches),
        preset=mode or nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(batches),  # NNCF counts dataset items, here batches
        advanced_parameters=adv,
    )
    if signed_activations:
        from nncf.torch.quantization.layers import SymmetricQuantizer

        for _, q in quantizers(qmodel):
            if not q.narrow_range and isinstance(q, SymmetricQuantizer):
                q.signed = True
    return qmodel.eval()


@torch.no_grad()
def logits(module: nn.Module, data: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
    """Eval-mode outputs of a torch module on preprocessed inputs."""
    was = module.training
    module.eval()
    out = [module(torch.from_numpy(data[i : i + batch])).float().numpy() for i in range(0, len(data), batch)]
    module.train(was)
    return np.concatenate(out)


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weights decay; biases, norms and quantizer scales (NNCF's hook storage) never do."""
    decay, keep = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (keep if p.ndim <= 1 or "__nncf_hooks" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _check_labels(train: SampleSet, alpha: float) -> None:
    if train.labels is None and alpha < 1:
        raise ConfigError(
            f"QAT training data {train.source!r} has no labels",
            hint="pass labelled --train-data (class folders, 'embedded', .npz with 'y') or --distill 1.0",
        )


def _step_loop(student: nn.Module, teacher: nn.Module | None, cfg: QatConfig, total_steps: int) -> StepLoop:
    """The trainer's step loop set for QAT: AdamW (no decay on biases, norms and quantizer scales), cosine from
    ``lr`` to 0 with no warm-up, frozen BN, distillation from ``teacher`` (labels only without one)."""
    sched = OptimConfig(name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs, warmup_epochs=0)
    return StepLoop(
        optimizer=torch.optim.AdamW(_param_groups(student, cfg.weight_decay), lr=cfg.lr),
        loss_fn=objective(
            teacher, alpha=cfg.distill_alpha, temperature=cfg.temperature, label_smoothing=cfg.label_smoothing
        ),
        lr_at=schedule(sched, total_steps=total_steps, warmup_steps=0),
        freeze_bn=True,  # any BN that could not be folded keeps its statistics
        name="QAT",
        hint="lower --qat-lr",
    )


@quiet_nncf
def finetune(
    student: nn.Module,
    teacher: nn.Module | None,
    train: SampleSet,
    cfg: QatConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The seeded fine-tuning loop (any module: the QAT model, or a float control) on the trainer's
    :class:`~edgecnn.train.loop.StepLoop`, so QAT steps exactly as training does. Returns one row per epoch."""
    say = progress or log.info
    alpha = cfg.distill_alpha if teacher is not None else 0.0
    _check_labels(train, alpha)
    k = int(logits(teacher if teacher is not None else student, train.data[:1]).shape[-1])
    x_all = torch.from_numpy(train.data)
    y_all = None if train.labels is None else torch.nn.functional.one_hot(torch.from_numpy(train.labels), k).float()
    bs = min(cfg.batch_size, len(train))
    per_epoch = len(train) // bs
    loop = _step_loop(student, teacher if alpha > 0 else None, cfg, per_epoch * cfg.epochs)
    gen = torch.Generator().manual_seed(cfg.seed)
    saved_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if teacher is not None:
        teacher.eval()
    history: list[dict[str, Any]] = []
    step = 0
    try:
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            perm = torch.randperm(len(train), generator=gen)[: per_epoch * bs]  # the last partial batch is dropped
            batches = ((x_all[idx], None if y_all is None else y_all[idx]) for idx in perm.split(bs))
            stats = loop.run_epoch(student, batches, epoch=epoch, step=step)
            step = stats.step
            row = {
                "epoch": epoch + 1,
                "steps": step,
                "train_loss": stats.mean_loss,
                "seconds": round(time.perf_counter() - t0, 2),
            }
            history.append(row)
            say(f"QAT epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.4f} ({row['seconds']:.0f} s)")
    finally:
        torch.set_num_threads(saved_threads)
        student.eval()
    return history


def _top1(module: nn.Module, s: SampleSet | None) -> float | None:
    if s is None or s.labels is None:
        return None
    return float((logits(module, s.data).argmax(-1) == s.labels).mean())


@quiet_nncf
def train_qat(
    net: nn.Module,
    calibration: SampleSet,
    train: SampleSet,
    cfg: QatConfig,
    *,
    per_channel: bool = True,
    signed_activations: bool = False,
    preset: str = "performance",
    bias_correction: bool = True,
    overflow_fix: bool = False,
    evaluation: SampleSet | None = None,
    progress: Callable[[str], None] | None = None,
) -> QatModel:
    """Fold BN, insert NNCF quantizers initialised on ``calibration``, fine-tune on ``train`` (distilling ``net``).

    With labelled ``evaluation`` data the record also holds the torch-simulated top-1 before and after fine-tuning
    (the bundle's own numbers come from the exported file, see the manifest's ``fp32_vs_int8``)."""
    say = progress or log.info
    t0 = time.perf_counter()
    train.check_shape(tuple(calibration.data.shape[1:]), "QAT training")
    _check_labels(train, cfg.distill_alpha)
    folded, n_bn = fold_batchnorm(net)
    say(f"QAT: {n_bn} BatchNorm layers folded; NNCF inserts quantizers (calibrated on {len(calibration)} samples)")
    qmodel = insert_quantizers(
        folded,
        calibration,
        per_channel=per_channel,
        signed_activations=signed_activations,
        preset=preset,
        bias_correction=bias_correction,
        overflow_fix=overflow_fix,
    )
    sim: dict[str, Any] = {"on": None if evaluation is None else evaluation.source}
    sim["ptq_init_top1"] = _top1(qmodel, evaluation)
    t_train = time.perf_counter()
    history = finetune(qmodel, folded, train, cfg, progress=say)
    train_s = time.perf_counter() - t_train
    sim["qat_top1"] = _top1(qmodel, evaluation)
    sim["fp32_top1"] = _top1(net, evaluation)
    scheme = describe_scheme(qmodel)
    nncf = _nncf()
    record = {
        **cfg.record(),
        "framework": f"nncf {nncf.__version__} (torch), fake quantizers fine-tuned with the weights",
        "train_data": train.record(),
        "bn_folded": n_bn,
        "scheme": scheme,
        "overflow_fix": overflow_fix,
        "scales": "learned by QAT and exported as they are (no calibration after fine-tuning)",
        "init": "nncf.quantize on the calibration set: min/max ranges" + (", fast bias correction" * bias_correction),
        "history": history,
        "simulated_top1": sim,
        "train_seconds": round(train_s, 2),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return QatModel(module=qmodel, scheme=scheme, record=record)


@quiet_nncf
def ptq_start(
    net: nn.Module,
    calibration: SampleSet,
    *,
    per_channel: bool = True,
    signed_activations: bool = False,
    bias_correction: bool = True,
    overflow_fix: bool = False,
) -> QatModel:
    """QAT's starting point without fine-tuning (NNCF PTQ on the folded module, the same scheme): the fair PTQ
    baseline for a QAT result, exported through the same path."""
    folded, n_bn = fold_batchnorm(net)
    qmodel = insert_quantizers(
        folded,
        calibration,
        per_channel=per_channel,
        signed_activations=signed_activations,
        bias_correction=bias_correction,
        overflow_fix=overflow_fix,
    )
    scheme = describe_scheme(qmodel)
    return QatModel(module=qmodel, scheme=scheme, record={"epochs": 0, "bn_folded": n_bn, "scheme": scheme})
