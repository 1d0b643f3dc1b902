"""Must-show: Noisy Student (Xie et al. 2020) on a low-label split of the embedded MNIST digits — 10 % of the
training split keeps its labels, the rest is unlabelled — and the student beats its teacher on the held-out test
set, round after round.

    .venv/bin/python benchmarks/train_noisy_student.py --rounds 2

Writes benchmarks/results/train_noisy_student.json with the teacher's and student's test top-1 per round.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import environment, quiet_threads, scratch_dir, write_result  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--labelled-fraction", type=float, default=0.1)
    ap.add_argument("--teacher-epochs", type=int, default=40)
    ap.add_argument("--student-epochs", type=int, default=14)
    ap.add_argument("--width-growth", type=float, default=1.25, help="student width = teacher width × this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(scratch_dir("noisy_student")), help="run directory (checkpoints)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="recipe override KEY=VALUE")
    args = ap.parse_args()
    quiet_threads()

    from edgecnn.train.datasets import load_data
    from edgecnn.train.noisy_student import NoisyStudentConfig, low_label_split, noisy_student
    from edgecnn.train.recipe import load_recipe

    overrides = [
        f"train.threads={args.threads}",
        "train.progress=false",
        f"optim.epochs={args.teacher_epochs}",
        "data.batch_size=32",
        *args.sets,
    ]
    recipe = load_recipe("mnist_embedded", overrides)
    data = load_data(recipe.data)
    labelled, unlabelled = low_label_split(data.train, args.labelled_fraction, seed=recipe.train.seed)
    # Student noise: dropout + stochastic depth (NoisyStudentConfig) and stronger input noise than the teacher's.
    strong = dataclasses.replace(
        recipe.augment, crop_scale=(0.6, 1.0), rotate_p=0.8, rotate_degrees=15.0, cutout_p=0.5, cutout_fraction=0.3
    )
    cfg = NoisyStudentConfig(
        rounds=args.rounds,
        soft=True,
        threshold=0.3,
        balance=True,
        student_dropout=0.3,
        student_drop_path=0.2,
        width_growth=args.width_growth,
        student_epochs=args.student_epochs,
        student_augment=strong,
    )
    env = environment(args.threads)
    t0 = time.perf_counter()
    res = noisy_student(
        recipe,
        labelled=labelled,
        unlabelled=unlabelled,
        data=data,
        out_dir=args.out,
        cfg=cfg,
        report=lambda m: print(m, flush=True),
    )
    wall = time.perf_counter() - t0
    rounds = [dataclasses.asdict(r) for r in res.rounds]
    out = {
        "benchmark": "train_noisy_student",
        "command": " ".join([".venv/bin/python", "benchmarks/train_noisy_student.py", *sys.argv[1:]]),
        "labelled": len(labelled),
        "unlabelled": len(unlabelled),
        "test_images": len(data.test) if data.test is not None else 0,
        "teacher_test_top1": res.teacher_test_top1,
        "rounds": rounds,
        "student_beats_teacher_every_round": all(r.student_test_top1 > r.teacher_test_top1 for r in res.rounds),
        "config": {**dataclasses.asdict(cfg), "recipe": "mnist_embedded", "overrides": overrides},
        "wall_time_s": round(wall, 1),
        "environment": {**env, "load_average_at_end": list(__import__("os").getloadavg())},
    }
    path = write_result("train_noisy_student.json", out)
    for r in res.rounds:
        print(f"round {r.round}: teacher {100 * r.teacher_test_top1:.2f}%  student {100 * r.student_test_top1:.2f}%")
    print(f"→ {path}")
    return 0 if out["student_beats_teacher_every_round"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
