"""Noisy Student (Xie et al. 2020): pseudo-labelling rules, the low-label split, and one tiny end-to-end round."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.data.sources import procedural_shapes
from edgecnn.errors import ConfigError
from edgecnn.train.noisy_student import NoisyStudentConfig, low_label_split, noisy_student, pseudo_labels


def test_pseudo_labels_soft_hard_and_threshold():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.4, 0.6]], np.float32)
    idx, t = pseudo_labels(probs, soft=True, threshold=0.58, balance=False)
    assert idx.tolist() == [0, 1, 3] and np.allclose(t, probs[[0, 1, 3]])
    idx, t = pseudo_labels(probs, soft=False, threshold=0.0, balance=False)
    assert idx.tolist() == [0, 1, 2, 3] and t.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]


def test_pseudo_labels_balance_keeps_most_confident_and_duplicates_scarce_classes():
    # class 0 predicted 5 times, class 1 once: quota = 6 // 2 = 3 per class
    probs = np.array([[0.99, 0.01], [0.6, 0.4], [0.9, 0.1], [0.7, 0.3], [0.8, 0.2], [0.3, 0.7]], np.float32)
    idx, t = pseudo_labels(probs, soft=False, threshold=0.0, balance=True)
    assert idx[:3].tolist() == [0, 2, 4]  # class 0: top-3 by confidence
    assert idx[3:].tolist() == [5, 5, 5]  # class 1: its one image duplicated up to the quota
    assert np.bincount(t.argmax(1)).tolist() == [3, 3]


def test_low_label_split_is_stratified():
    data = procedural_shapes(120, size=16)
    lab, unl = low_label_split(data, 0.1, seed=0)
    assert len(lab) == 12 and len(unl) == 108
    assert np.bincount(lab.labels).tolist() == [2] * 6
    with pytest.raises(ConfigError):
        low_label_split(data, 1.5)


def test_noisy_student_round(tmp_path):
    from edgecnn.train.datasets import load_data
    from tests.test_train import tiny

    recipe = tiny(optim={"epochs": 1}, augment={"mixup_p": 0.0, "cutmix_p": 0.0})
    data = load_data(recipe.data)
    lab, unl = low_label_split(data.train, 0.25, seed=0)
    res = noisy_student(
        recipe,
        labelled=lab,
        unlabelled=unl,
        data=data,
        out_dir=tmp_path,
        cfg=NoisyStudentConfig(rounds=1, threshold=0.0, width_growth=1.5, student_epochs=1),
    )
    (r,) = res.rounds
    assert r.teacher_test_top1 == res.teacher_test_top1 and 0 <= r.student_test_top1 <= 1
    assert r.pseudo_labelled > 0 and r.pseudo_label_accuracy is not None
    import json

    side = json.loads((tmp_path / "student_1" / "model.json").read_text())
    assert side["arch"]["options"]["width_mult"] == pytest.approx(0.375)  # larger student, noised
    assert side["arch"]["options"]["dropout"] == pytest.approx(0.3)


def test_cli_noisy_student_reports_rounds(tmp_path):
    import json

    from click.testing import CliRunner

    from edgecnn.cli.main import cli

    sets = [
        "model.width_mult=0.25",
        'data.source="shapes"',
        "data.input_size=16",
        "data.samples=96",
        "data.batch_size=16",
        "optim.epochs=1",
        "train.threads=1",
        "train.progress=false",
    ]
    args = [a for s in sets for a in ("--set", s)]
    p = CliRunner().invoke(
        cli,
        [
            "train",
            "noisy-student",
            "mnist_embedded",
            "--out",
            str(tmp_path),
            "--labelled-fraction",
            "0.3",
            "--threshold",
            "0",
            "--json",
            *args,
        ],
        catch_exceptions=False,
    )
    assert p.exit_code == 0, p.output
    out = json.loads(p.stdout)
    assert len(out["rounds"]) == 1 and {"teacher_test_top1", "student_test_top1"} <= set(out["rounds"][0])
