"""Per-epoch JSON-lines log and the training-curve PNG (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class EpochLog:
    """Appends one JSON object per epoch to ``log.jsonl``; on resume, drops entries after the resumed epoch."""

    def __init__(self, path: Path, *, resume_epoch: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if resume_epoch is not None and path.exists():
            rows = []
            for line in path.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by the interruption
                    continue
            self.rows = [r for r in rows if isinstance(r, dict) and r.get("epoch", 0) <= resume_epoch]
        self._rewrite()

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        with os.fdopen(fd, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.rows)
        os.replace(tmp, self.path)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def plot_curves(rows: list[dict[str, Any]], path: Path, *, title: str = "") -> Path | None:
    """Loss and top-1 per epoch; returns None when matplotlib is not installed (the log still has the numbers)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - optional dependency
        return None
    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(epochs, [r["train_loss"] for r in rows], label="train")
    if rows and "val_loss" in rows[0]:
        ax1.plot(epochs, [r["val_loss"] for r in rows], label="val")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    if rows and "val_top1" in rows[0]:
        ax2.plot(epochs, [100 * r["val_top1"] for r in rows], label="val top-1")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
