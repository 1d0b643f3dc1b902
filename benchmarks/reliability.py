"""Reliability and security harness (issue 15): fuzzed manifests and bundle trees, byte flips and truncations of
every bundle file, containment attacks, bad CLI inputs, SIGKILLs during export and quantize, 8 threads on one
session, and an RSS soak — each with the counts the issue's "Must show" names.

    nice -n 19 .venv/bin/python benchmarks/reliability.py [--manifests 8000 --trees 2000 --flips 1200 ...]

A tiny MobileNetV3-Small (width 0.25, 4 classes, 32 px) keeps 10,000 loads and 30 exports affordable on 2 cores;
the checks do not depend on model size. Writes benchmarks/results/reliability.json (+ .md).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from edgecnn import runtime  # noqa: E402
from edgecnn.errors import EdgeCNNError  # noqa: E402
from tests.bundle_fuzz import apply_tree_edit, manifest_edits, outcome, tree_edits, write_manifest  # noqa: E402

# Manifest fields a flip may change without being refused, and why (nothing in them reaches the model's numbers).
UNPROTECTED_HARMLESS = {
    "created": "export timestamp, informational",
    "target": "free text by design (a new target needs no runtime edit): backend_options.runtime_backend decides "
    "what runs it",
    "producer": "tool versions, informational",
    "model": "model provenance (name, options, params, MACs), informational",
    "parity": "the export's own parity report, informational",
    "golden.tolerance.max_rel_error": "only a stricter tolerance is accepted (the precision's rule bounds it)",
    "golden.tolerance.top_k": "only a stricter top-k is accepted (the precision's rule bounds it)",
    "<whitespace>": "JSON whitespace, same document",
}


def _tiny_model(num_classes: int = 4) -> Any:
    import torch

    import edgecnn
    from edgecnn.models.synthetic import randomize_batchnorm

    torch.manual_seed(0)
    net = edgecnn.create_model("mobilenet_v3_small", num_classes=num_classes, width_mult=0.25).eval()
    randomize_batchnorm(net)
    return net


def _export(net: Any, target: str, out: Path) -> Path:
    from edgecnn.exporters import ExportOptions, Precision, export_bundle

    return export_bundle(net, ExportOptions(target=target, precision=Precision.FP32, resolution=32), out).bundle


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def _safe_outcome(root: Path) -> str:
    try:
        return outcome(root)
    except Exception as e:  # the bug the harness exists to find: recorded, not raised
        return f"UNTYPED {type(e).__name__}: {str(e)[:120]}"


# ----------------------------------------------------------------------------------------------------- fuzzing


def fuzz(base: Path, work: Path, n_manifests: int, n_trees: int) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    opts = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None, "derandomize": True}
    man_counts: collections.Counter[str] = collections.Counter()
    tree_counts: collections.Counter[str] = collections.Counter()
    mwork = work / "manifests"
    mwork.mkdir()
    for f in base.iterdir():
        if f.name != "manifest.json":
            shutil.copy2(f, mwork / f.name)
    original = json.loads((base / "manifest.json").read_text())

    @settings(max_examples=n_manifests, **opts)
    @given(manifest_edits(original))
    def check_manifest(data: dict) -> None:
        write_manifest(mwork, data)
        man_counts[_safe_outcome(mwork)] += 1

    files = sorted(original["files"])

    @settings(max_examples=n_trees, **opts)
    @given(tree_edits(files), st.integers(0, 2**31))
    def check_tree(edits: list[tuple], seed: int) -> None:
        root, outside = work / "t", work / "o"
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)
        shutil.copytree(base, root)
        outside.mkdir()
        for edit in edits:
            apply_tree_edit(root, outside, edit)
        tree_counts[_safe_outcome(root)] += 1

    t0 = time.perf_counter()
    check_manifest()
    check_tree()
    untyped = {k: v for c in (man_counts, tree_counts) for k, v in c.items() if k.startswith("UNTYPED")}
    return {
        "manifests": sum(man_counts.values()),
        "trees": sum(tree_counts.values()),
        "manifest_outcomes": dict(man_counts.most_common()),
        "tree_outcomes": dict(tree_counts.most_common()),
        "untyped": untyped,
        "seconds": round(time.perf_counter() - t0, 1),
    }


# ----------------------------------------------------------------------------------------- flips, truncations


def _changed_path(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first JSON path where ``a`` and ``b`` differ (None when equal)."""
    if type(a) is not type(b):
        return prefix or "<root>"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{prefix}.{k}".lstrip(".")
            p = _changed_path(a[k], b[k], f"{prefix}.{k}")
            if p:
                return p.lstrip(".")
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return prefix or "<root>"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            p = _changed_path(x, y, f"{prefix}.{i}")
            if p:
                return p.lstrip(".")
        return None
    return None if a == b else (prefix or "<root>")


def _classify(path: str) -> tuple[str, str | None]:
    for key, why in UNPROTECTED_HARMLESS.items():
        if path == key or path.startswith(key + "."):
            return key, why
    return path, None


def flips(bundles: dict[str, Path], work: Path, n_flips: int, n_trunc: int, rng: random.Random) -> dict[str, Any]:
    """Flip one random byte (XOR with a random non-zero byte) / truncate one file of a fresh copy, then load."""
    jobs = [(target, name) for target, b in bundles.items() for name in sorted(os.listdir(b))]
    refused: collections.Counter[str] = collections.Counter()
    accepted: dict[str, dict[str, Any]] = {}
    untyped: list[str] = []
    per_file: collections.Counter[str] = collections.Counter()

    def trial(kind: str, i: int) -> None:
        target, name = jobs[i % len(jobs)]
        src = bundles[target]
        root = work / "flip"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(src, root)
        raw = bytearray((root / name).read_bytes())
        if kind == "flip":
            pos = rng.randrange(len(raw))
            raw[pos] ^= rng.randrange(1, 256)
        else:
            raw = raw[: rng.randrange(len(raw))]
        (root / name).write_bytes(bytes(raw))
        per_file[f"{target}/{name} {kind}"] += 1
        res = _safe_outcome(root)
        if res.startswith("UNTYPED"):
            untyped.append(f"{target}/{name} {kind}: {res}")
        elif res != "valid":
            refused[res] += 1
        else:
            where = "<whitespace>"
            if name == "manifest.json":
                try:
                    changed = _changed_path(json.loads((src / name).read_text()), json.loads((root / name).read_text()))
                except ValueError:
                    changed = "<unparsable yet accepted>"
                where = changed or "<whitespace>"
            else:
                where = f"{name} (a verified file!)"
            key, why = _classify(where)
            entry = accepted.setdefault(key, {"count": 0, "why": why or "NOT HARMLESS: a verified field", "files": []})
            entry["count"] += 1
            if f"{target}/{name}" not in entry["files"]:
                entry["files"].append(f"{target}/{name}")

    t0 = time.perf_counter()
    for i in range(n_flips):
        trial("flip", i)
    for i in range(n_trunc):
        trial("truncate", i)
    verified_accepted = sum(v["count"] for v in accepted.values() if v["why"].startswith("NOT HARMLESS"))
    return {
        "flips": n_flips,
        "truncations": n_trunc,
        "per_file": dict(sorted(per_file.items())),
        "refused": dict(refused.most_common()),
        "accepted": accepted,
        "accepted_in_verified_fields": verified_accepted,
        "untyped": untyped,
        "seconds": round(time.perf_counter() - t0, 1),
    }


# ---------------------------------------------------------------------------------------------- containment


def containment(base: Path, work: Path) -> dict[str, Any]:
    """Attacks on where bundle files live: names that leave the bundle, links, special files. Every one refused."""
    outside = work / "outside"
    outside.mkdir()
    (outside / "secret.onnx").write_bytes((base / "model.onnx").read_bytes())
    bad_names = [
        "../model.onnx",
        "../../etc/passwd",
        "/etc/passwd",
        "/tmp/x.onnx",
        "sub/../../x",
        "a\\b.onnx",
        "\\\\server\\share",
        "./model.onnx",
        "model.onnx/",
        "",
        ".",
        "..",
        "manifest.json",
        "mo\x00del.onnx",
        "m" * 300,
        "a/" * 600 + "b",
        "line\nbreak",
        "tab\tname",
        "~/model.onnx",
        "sub//model.onnx",
    ]
    cases: list[tuple[str, Any]] = []
    for bad in bad_names:
        for role in ("entry", "golden", "extra"):
            cases.append((f"name {bad[:30]!r} as {role}", ("name", bad, role)))
    for name in ("model.onnx", "golden.npz", "manifest.json"):
        cases += [
            (f"{name} symlinked outside", ("symlink_out", name)),
            (f"{name} hard-linked outside", ("hardlink", name)),
            (f"{name} symlink loop", ("loop", name)),
            (f"{name} replaced by a directory", ("dir", name)),
            (f"{name} replaced by a FIFO", ("fifo", name)),
        ]
    cases += [
        ("bundle root is a symlink to a bundle with an extra file", ("root_extra", "")),
        ("unlisted model.onnx.data (ONNX external data)", ("extra_file", "model.onnx.data")),
        ("unlisted weights.bin", ("extra_file", "weights.bin")),
        ("unlisted hidden file", ("extra_file", ".hidden")),
        ("unlisted subdirectory", ("extra_dir", "sub")),
        ("symlinked subdirectory to outside", ("dir_symlink", "sub")),
        ("dangling symlink", ("dangling", "ghost")),
    ]
    results: dict[str, str] = {}
    for label, case in cases:
        root = work / "c"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(base, root)
        kind, arg = case[0], case[1]
        if kind == "name":
            data = json.loads((root / "manifest.json").read_text())
            role = case[2]
            old = {"entry": data["entry"], "golden": data["golden"]["file"], "extra": None}[role]
            meta = data["files"].pop(old) if old else {"size": 1, "sha256": "0" * 64}
            data["files"][arg] = meta
            if role == "entry":
                data["entry"] = arg
            elif role == "golden":
                data["golden"]["file"] = arg
            write_manifest(root, data)
        elif kind == "symlink_out":
            shutil.move(root / arg, outside / f"moved-{arg}")
            os.symlink(outside / f"moved-{arg}", root / arg)
        elif kind == "hardlink":
            link = outside / f"hl-{arg}"
            link.unlink(missing_ok=True)
            os.link(root / arg, link)
        elif kind == "loop":
            (root / arg).unlink()
            os.symlink(arg, root / arg)
        elif kind == "dir":
            (root / arg).unlink()
            (root / arg).mkdir()
        elif kind == "fifo":
            (root / arg).unlink()
            os.mkfifo(root / arg)
        elif kind == "root_extra":
            (root / "extra.txt").write_text("x")
            link = work / "rootlink"
            link.unlink(missing_ok=True)
            os.symlink(root, link)
            root = link
        elif kind == "extra_file":
            (root / arg).write_bytes(b"\0" * 16)
        elif kind == "extra_dir":
            (root / arg).mkdir()
        elif kind == "dir_symlink":
            os.symlink(outside, root / arg)
        elif kind == "dangling":
            os.symlink(work / "nowhere", root / arg)
        results[label] = _safe_outcome(root)
    accepted = [k for k, v in results.items() if v == "valid"]
    untyped = [f"{k}: {v}" for k, v in results.items() if v.startswith("UNTYPED")]
    return {
        "cases": len(results),
        "refused": len(results) - len(accepted) - len(untyped),
        "accepted": accepted,
        "untyped": untyped,
        "by_error": dict(collections.Counter(v for v in results.values() if v != "valid").most_common()),
    }


# ---------------------------------------------------------------------------------------------------- the CLI


def cli_inputs(base: Path, work: Path) -> dict[str, Any]:
    """Bad command lines: exit != 0, exactly one ``error:`` line on stderr, no traceback, nothing pre-existing
    changed (a sentinel directory with a user's files and an existing bundle are hashed before and after)."""
    from click.testing import CliRunner

    from edgecnn.cli.main import cli

    user = work / "userdir"
    user.mkdir()
    (user / "photo.jpg").write_bytes(b"precious")
    bundle = work / "bundle"
    shutil.copytree(base, bundle)
    (work / "afile").write_text("x")
    bad_manifest = work / "badm"
    shutil.copytree(base, bad_manifest)
    (bad_manifest / "manifest.json").write_text("[" * 5000 + "]" * 5000)
    img = work / "img.png"
    from PIL import Image

    Image.new("RGB", (40, 40)).save(img)
    (work / "notimg.png").write_bytes(b"not a png")
    (work / "bad.toml").write_bytes(b"\xff\xfe")
    (work / "ckpt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    b, u, f = str(bundle), str(user), str(work / "afile")
    argvs: list[list[str]] = [
        ["nonsense"],
        ["--no-such-flag"],
        ["export"],
        ["export", "mobilenet_v3_small"],
        ["export", "mobilenet_v3_small", "-t", "bogus"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "-p", "int3"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "-r", "0"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "-r", "100000"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "-r", "abc"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--batch", "0"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--batch", "2", "--dynamic-batch", "1:2:4"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--dynamic-batch", "4:2:1"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--dynamic-batch", "x"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--opset", "3"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "-o", "nokey"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "-o", "bogus=1"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--out", u, "--overwrite"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--out", u],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--out", ".", "--overwrite"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--out", "..", "--overwrite"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--out", f],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--out", f + "/sub"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--out", b],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--calib-data", "embedded"],
        ["export", "mobilenet_v3_small", "-t", "onnx", "--weights", str(work / "missing.pt")],
        ["export", str(work / "ckpt.safetensors"), "-t", "onnx"],
        ["export", "mobilenet_v9", "-t", "onnx"],
        ["analyze", "mobilenet_v3_small", "-r", "1"],
        ["analyze", "mobilenet_v3_small", "-r", "-5"],
        ["analyze", "mobilenet_v3_small", "--batch", "0"],
        ["analyze", "mobilenet_v9"],
        ["analyze", "mobilenet_v3_small", "--width-mult", "0"],
        ["profile", "mobilenet_v3_small", "-r", "0"],
        ["profile", "mobilenet_v3_small", "--top", "-1"],
        ["bench", "mobilenet_v3_small", "--threads", "0"],
        ["bench", "mobilenet_v3_small", "--threads", "-3"],
        ["bench", "mobilenet_v3_small", "-r", "1"],
        ["run"],
        ["run", b],
        ["run", b, str(img), "--top-k", "0"],
        ["run", b, str(img), "--top-k", "-1"],
        ["run", b, str(img), "--threads", "0"],
        ["run", b, str(work / "missing.png")],
        ["run", b, str(work / "notimg.png")],
        ["run", b, str(img), "--backend", "bogus"],
        ["run", b, str(img), "--device", "tpu"],
        ["run", u, str(img)],
        ["run", str(bad_manifest), str(img)],
        ["run", f, str(img)],
        ["run", "nul\x00path", str(img)],
        ["run", "x" * 5000, str(img)],
        ["selftest"],
        ["selftest", u],
        ["selftest", str(bad_manifest)],
        ["selftest", b, "--backend", "tensorrt"],
        ["inspect", u],
        ["inspect", str(bad_manifest)],
        ["inspect", str(work / "missing")],
        ["build-engine", b],
        ["quantize", "mobilenet_v3_small", "-t", "onnx"],
        ["quantize", "mobilenet_v3_small", "-t", "onnx", "--calib-data", str(work / "none")],
        ["quantize", "mobilenet_v3_small", "-t", "onnx", "--calib-data", "embedded", "-r", "3"],
        ["quantize", "mobilenet_v3_small", "-t", "onnx", "--calib-data", "embedded", "--out", u, "--overwrite"],
        ["quantize", "mobilenet_v3_small", "-t", "onnx", "--calib-data", "embedded", "--report-dir", f],
        ["train", str(work / "bad.toml"), "--out", str(work / "run")],
        ["train", "no_such_recipe"],
        ["train", "mnist_embedded", "--set", "train.threads=0", "--out", str(work / "run")],
        ["train", "mnist_embedded", "--resume", "--out", str(work / "run2")],
        ["train", "mnist_embedded", "--out", f],
        ["train", "mnist_embedded", "--set", "nokey", "--out", str(work / "run")],
        ["list", "nothing"],
        ["augment", "preview"],
        ["augment", "preview", "mnist_embedded", "-n", "1", "--rows", "1", "--out", f + "/x.png"],
    ]
    before = {p: _tree_digest(p) for p in (user, bundle)} | {work / "afile": (work / "afile").read_text()}
    results = []
    for argv in argvs:
        r = CliRunner().invoke(cli, argv, prog_name="edgecnn")
        lines = r.stderr.strip().splitlines()
        ok = (
            (r.exception is None or isinstance(r.exception, SystemExit))
            and r.exit_code != 0
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and "Traceback" not in r.output
        )
        results.append({"argv": argv, "exit": r.exit_code, "ok": ok, "stderr": lines[:3]})
    after = {p: _tree_digest(p) for p in (user, bundle)} | {work / "afile": (work / "afile").read_text()}
    changed = [str(p) for p in before if before[p] != after[p]]
    leftovers = sorted(p.name for p in work.iterdir() if ".tmp-" in p.name or ".old-" in p.name)
    return {
        "inputs": len(results),
        "one_line_nonzero": sum(r["ok"] for r in results),
        "failures": [r for r in results if not r["ok"]],
        "pre_existing_changed": changed,
        "temp_leftovers": leftovers,
        "exit_codes": dict(collections.Counter(r["exit"] for r in results)),
        "examples": [f"edgecnn {' '.join(a[:40] for a in r['argv'])} → {r['stderr'][0]}" for r in results[::12]],
    }


# ------------------------------------------------------------------------------------------------------ kills


def kills(work: Path, n_export: int, n_quantize: int, rng: random.Random) -> dict[str, Any]:
    """SIGKILL ``edgecnn export`` / ``quantize`` (overwriting an existing bundle) at random times. After each kill
    the destination is the old bundle, intact, or absent — never partial; after the next export no temp dir of it
    is left."""
    from edgecnn.models.weights import save_weights

    ckpt = save_weights(_tiny_model(), work / "tiny.safetensors")
    np.save(work / "cal.npy", np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32))
    np.savez(work / "cal.npz", x=np.load(work / "cal.npy"))
    dest = work / "dest"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base_cmd = [sys.executable, "-m", "edgecnn"]
    commands = {
        "export": [*base_cmd, "export", str(ckpt), "-t", "onnx", "-r", "32", "--out", str(dest), "--overwrite"],
        "quantize": [
            *base_cmd,
            "quantize",
            str(ckpt),
            "-t",
            "onnx",
            "-r",
            "32",
            "--calib-data",
            str(work / "cal.npz"),
            "--samples",
            "16",
            "--no-latency",
            "--out",
            str(dest),
            "--overwrite",
            "--report-dir",
            str(work / "report"),
        ],
    }
    durations = {}
    for kind, cmd in commands.items():  # one full run each: the time window kills are drawn from
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)
        durations[kind] = time.perf_counter() - t0
    runtime.load(dest).selftest()
    plan = ["export"] * n_export + ["quantize"] * n_quantize
    rng.shuffle(plan)
    records = []
    for kind in plan:
        before = (dest / "manifest.json").read_bytes() if (dest / "manifest.json").exists() else None
        at = rng.uniform(0.2, durations[kind] * 0.9)  # within the run: 1.05x let 10 of 34 runs finish first
        proc = subprocess.Popen(commands[kind], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = "absent"
        if dest.exists():
            try:
                runtime.open_bundle(dest)
                now = (dest / "manifest.json").read_bytes()
                state = "old bundle" if now == before else "new bundle"
            except EdgeCNNError as e:
                state = f"PARTIAL: {e}"
        leftovers = sorted(p.name for p in work.iterdir() if p.name.startswith("."))  # any hidden temp dir
        records.append({"kind": kind, "at_s": round(at, 2), "killed": killed, "dest": state, "leftovers": leftovers})
    subprocess.run(commands["export"], env=env, check=True, capture_output=True, timeout=900)
    final_left = sorted(p.name for p in work.iterdir() if p.name.startswith("."))
    return {
        "kills": sum(r["killed"] for r in records),
        "runs": len(records),
        "by_kind": dict(collections.Counter(r["kind"] for r in records if r["killed"])),
        "full_run_seconds": {k: round(v, 1) for k, v in durations.items()},
        "partial_bundles": sum(r["dest"].startswith("PARTIAL") for r in records),
        "dest_states": dict(collections.Counter(r["dest"] for r in records)),
        "runs_leaving_temp_dirs": sum(bool(r["leftovers"]) for r in records),
        "leftover_after_next_export": final_left,
        "final_bundle_ok": bool(runtime.load(dest).selftest()["ok"]),
        "records": records,
    }


# ---------------------------------------------------------------------------------------------- threads, RSS


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def threads_and_soak(bundle: Path, n_threads: int, per_thread: int, soak: int) -> dict[str, Any]:
    """One session, ``n_threads`` threads × ``per_thread`` predictions on distinct seeded inputs, each output compared
    bit for bit with a single-threaded reference; then ``soak`` more predictions in one thread with RSS sampled."""
    sess = runtime.load(bundle, threads=1)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(16)]
    ref = [sess.predict(x) for x in inputs]
    errors, mismatches = [], [0] * n_threads
    for _ in range(200):  # warm-up before the RSS baseline
        sess.predict(inputs[0])

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                k = (i + t) % len(inputs)
                if not np.array_equal(sess.predict(inputs[k]), ref[k]):
                    mismatches[t] += 1
        except Exception as e:  # counted, the figure must be 0
            errors.append(f"{type(e).__name__}: {e}")

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    threaded_s = time.perf_counter() - t0
    rss_threads = _rss_mb()
    samples = []
    t0 = time.perf_counter()
    for i in range(soak):
        sess.predict(inputs[i % len(inputs)])
        if i % (soak // 10 or 1) == 0:
            samples.append(round(_rss_mb(), 1))
    rss_end = _rss_mb()
    return {
        "backend": sess.backend_name,
        "threads": n_threads,
        "predictions_threaded": n_threads * per_thread,
        "errors": errors[:5],
        "error_count": len(errors),
        "mismatches": sum(mismatches),
        "threaded_seconds": round(threaded_s, 1),
        "soak_predictions": soak,
        "soak_seconds": round(time.perf_counter() - t0, 1),
        "rss_mb_start": round(rss0, 1),
        "rss_mb_after_threads": round(rss_threads, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_growth_mb_total": round(rss_end - rss0, 2),
        "rss_growth_mb_soak": round(rss_end - rss_threads, 2),
        "rss_samples_mb": samples,
    }


# ------------------------------------------------------------------------------------------------------- main


def _md(res: dict[str, Any], cmd: str) -> str:
    f, fl, c, cl = res.get("fuzz"), res.get("flips"), res.get("containment"), res.get("cli")
    k, th = res.get("kills"), res.get("threads", [])
    out = [
        "# Reliability and security harness (issue 15)",
        "",
        f"`{cmd}` — {res['machine']}, {res['date']}. Model: MobileNetV3-Small ×0.25, 4 classes, 32 px (onnx and "
        "openvino fp32 bundles). Raw figures: `reliability.json`.",
        "",
        *[
            f"- {', '.join(s for s, c2 in res.get('commands', {}).items() if c2 == c)}: `{c}`"
            for c in dict.fromkeys(res.get("commands", {}).values())
            if c != cmd
        ],
        "",
        "| check | count | result |",
        "|---|---|---|",
    ]
    if f:
        untyped = sum(f["untyped"].values())
        out.append(
            f"| generated manifests + bundle trees (hypothesis) | {f['manifests']:,} + {f['trees']:,} = "
            f"{f['manifests'] + f['trees']:,} | {untyped} untyped exceptions, 0 tracebacks"
            f"{'' if not untyped else ' — SEE BELOW'} |"
        )
    if fl:
        out.append(
            f"| byte flips / truncations over every bundle file | {fl['flips']:,} / {fl['truncations']} | "
            f"{sum(fl['refused'].values())} refused; {sum(v['count'] for v in fl['accepted'].values())} accepted, "
            f"{fl['accepted_in_verified_fields']} of them in a verified field; {len(fl['untyped'])} untyped |"
        )
    if c:
        out.append(
            f"| containment cases | {c['cases']} | {c['refused']} refused, {len(c['accepted'])} accepted, "
            f"{len(c['untyped'])} untyped |"
        )
    if cl:
        out.append(
            f"| bad CLI inputs | {cl['inputs']} | {cl['one_line_nonzero']} one `error:` line + exit ≠ 0; "
            f"pre-existing files changed: {len(cl['pre_existing_changed'])}; temp dirs left: "
            f"{len(cl['temp_leftovers'])} |"
        )
    if k:
        out.append(
            f"| SIGKILL during export / quantize | {k['kills']} ({k['by_kind']}) | {k['partial_bundles']} partial "
            f"bundles; {len(k['leftover_after_next_export'])} temp dirs left after the next export |"
        )
    for t in th:
        out.append(
            f"| {t['backend']}: {t['threads']} threads × {t['predictions_threaded'] // t['threads']:,} predictions, "
            f"one session | {t['predictions_threaded']:,} | {t['error_count']} errors, {t['mismatches']} outputs not "
            f"bit-identical |"
        )
        out.append(
            f"| {t['backend']}: RSS over {t['predictions_threaded'] + t['soak_predictions']:,} predictions | "
            f"{t['soak_predictions']:,} soak | growth {t['rss_growth_mb_total']:+.2f} MB "
            f"({t['rss_mb_start']} → {t['rss_mb_end']} MB) |"
        )
    if f:
        out += ["", "## Fuzzing outcomes", "", "Manifests:", ""]
        out += [f"- {k2}: {v:,}" for k2, v in f["manifest_outcomes"].items()]
        out += ["", "Bundle trees:", ""]
        out += [f"- {k2}: {v:,}" for k2, v in f["tree_outcomes"].items()]
    if fl:
        out += ["", "## Byte flips accepted, and why", ""]
        out += ["| where | count | files | why |", "|---|---|---|---|"]
        for k2, v in sorted(fl["accepted"].items(), key=lambda kv: -kv[1]["count"]):
            out.append(f"| `{k2}` | {v['count']} | {', '.join(v['files'])} | {v['why']} |")
        out += ["", "Refused by: " + ", ".join(f"{k2} {v}" for k2, v in fl["refused"].items())]
    if c:
        out += ["", "## Containment", "", "Refused by: " + ", ".join(f"{k2} {v}" for k2, v in c["by_error"].items())]
        if c["accepted"]:
            out += ["", "Accepted (bugs): " + "; ".join(c["accepted"])]
    if cl:
        out += ["", "## CLI examples", ""] + [f"- `{e}`" for e in cl["examples"]]
        if cl["failures"]:
            out += ["", "Not one clean line:"] + [
                f"- `{r['argv']}` exit {r['exit']}: {r['stderr']}" for r in cl["failures"]
            ]
    if k:
        out += [
            "",
            "## Kills",
            "",
            f"Full runs took {k['full_run_seconds']} s; kill times drawn uniformly in 0.2 s … 0.9 × that. "
            f"Destination after each kill: {k['dest_states']}. Runs whose kill left a temp dir behind: "
            f"{k['runs_leaving_temp_dirs']} (removed by the next export's clean-up). Final export verified: "
            f"{k['final_bundle_ok']}.",
        ]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifests", type=int, default=8000)
    ap.add_argument("--trees", type=int, default=2000)
    ap.add_argument("--flips", type=int, default=1200)
    ap.add_argument("--truncations", type=int, default=60)
    ap.add_argument("--kills-export", type=int, default=16)
    ap.add_argument("--kills-quantize", type=int, default=16)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--per-thread", type=int, default=12_500)
    ap.add_argument("--soak", type=int, default=20_000)
    ap.add_argument("--only", default="fuzz,flips,containment,cli,kills,threads")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "reliability.json")
    args = ap.parse_args()
    only = set(args.only.split(","))
    rng = random.Random(0)
    import logging
    import platform

    logging.disable(logging.WARNING)
    res: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "args": vars(args) | {"out": str(args.out)},
    }
    if args.out.exists():  # sections not rerun keep their last figures
        res = {**json.loads(args.out.read_text()), **res}
    cmd = ("nice -n 19 .venv/bin/python benchmarks/reliability.py " + " ".join(sys.argv[1:])).strip()
    with tempfile.TemporaryDirectory(prefix="edgecnn-reliability-") as tmp:
        work = Path(tmp)
        net = _tiny_model()
        bundles = {t: _export(net, t, work / f"base-{t}") for t in ("onnx", "openvino")}
        for section, fn in (
            ("fuzz", lambda: fuzz(bundles["onnx"], _fresh(work, "fuzz"), args.manifests, args.trees)),
            ("flips", lambda: flips(bundles, _fresh(work, "flips"), args.flips, args.truncations, rng)),
            ("containment", lambda: containment(bundles["onnx"], _fresh(work, "cont"))),
            ("cli", lambda: cli_inputs(bundles["onnx"], _fresh(work, "cli"))),
            (
                "threads",
                lambda: [threads_and_soak(b, args.threads, args.per_thread, args.soak) for b in bundles.values()],
            ),
            ("kills", lambda: kills(_fresh(work, "kills"), args.kills_export, args.kills_quantize, rng)),
        ):
            if section in only:
                t0 = time.perf_counter()
                res[section] = fn()
                res.setdefault("commands", {})[section] = cmd  # sections rerun alone keep their own command
                print(f"{section}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
                args.out.with_suffix(".md").write_text(_md(res, cmd))  # after each section: partial runs count
    print(args.out.with_suffix(".md").read_text())


def _fresh(work: Path, name: str) -> Path:
    d = work / name
    d.mkdir()
    return d


if __name__ == "__main__":
    main()
