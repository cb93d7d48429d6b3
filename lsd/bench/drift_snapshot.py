"""Snapshots of a long drift run, beside its CSV, so that a killed run can resume: each
file written atomically (a kill leaves the old file or the new one), the JSON that names the
current npz written last (it commits the snapshot), nothing pickled."""

from __future__ import annotations

import csv
import glob
import json
import os
from pathlib import Path

import numpy as np

from ..io import write_atomic

SNAPSHOT_EVERY = 100  # frames between resume snapshots (a kill redoes at most this many)


def snapshot_json(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + ".resume.json")


def remove_snapshots(csv_path: Path, keep: Path | None = None) -> None:
    """Delete the snapshot beside `csv_path` (the JSON first: it is what names a snapshot),
    or, given `keep`, only the npz files other than that one."""
    if keep is None:
        snapshot_json(csv_path).unlink(missing_ok=True)
    for path in csv_path.parent.glob(glob.escape(csv_path.name) + ".resume-*.npz"):
        if path != keep:
            path.unlink()


def save_snapshot(csv_path: Path, out_file, run, stream, identity: dict,
                  seconds: float) -> None:
    """Snapshot the run after `run.done` frames: the frames and the generator into a new npz
    named by the frame, then the JSON that names it. The JSON, replaced last, commits the
    snapshot: a kill at any moment leaves one that names a whole npz. The CSV is synced
    first, so a snapshot never covers rows the disk has not got."""
    out_file.flush()
    os.fsync(out_file.fileno())
    npz = csv_path.with_name(f"{csv_path.name}.resume-{run.done:09d}.npz")
    inputs, outputs = zip(*run.pairs)
    arrays = {"inputs": np.stack(inputs), "outputs": np.stack(outputs),
              "first_output": run.first[0], "first_target": run.first[1],
              "generator": stream.g.get_state().numpy()}
    write_atomic(npz, lambda f: np.savez(f, **arrays))
    meta = {"frame": run.done, "npz": npz.name, "run": identity,
            "consistency_every": run.every, "seconds": round(seconds, 3)}
    write_atomic(snapshot_json(csv_path), lambda f: f.write(json.dumps(meta, indent=1).encode()))
    remove_snapshots(csv_path, keep=npz)


def load_snapshot(csv_path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    path = snapshot_json(csv_path)
    if not path.is_file():
        raise ValueError(f"nothing to resume: no snapshot {path} beside the CSV (a run writes "
                         f"one every {SNAPSHOT_EVERY} frames); drop --resume to start a new run")
    meta = json.loads(path.read_text())
    with np.load(path.with_name(meta["npz"]), allow_pickle=False) as z:  # arrays only
        return meta, {k: z[k] for k in z.files}


def cut_csv(csv_path: Path, done: int) -> tuple[list[str], list[list[str]]]:
    """Cut the CSV back to its header and first `done` rows, the ones the snapshot covers (a
    killed run wrote more, which are redone), and return those."""
    lines = csv_path.read_bytes().splitlines(keepends=True)[:done + 1]
    rows = list(csv.reader(line.decode() for line in lines))
    if len(rows) != done + 1 or [r[0] for r in rows[1:]] != [str(i) for i in range(done)]:
        raise ValueError(f"{csv_path} does not hold the {done} frames its snapshot covers: "
                         "delete it and its .resume files to start again")
    write_atomic(csv_path, lambda f: f.writelines(lines))
    return rows[0], rows[1:]
