"""Tests for lsd.checkpoint: exact round trips, atomic replacement, and hostile files
that must be refused without ever being unpickled or executed."""

import pickle
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml

from lsd import checkpoint
from lsd.checkpoint import CheckpointError, is_checkpoint, load_checkpoint, save_checkpoint

PROMPT = "水墨画, ink wash painting"
CONFIG = {
    "model": {"channels": 64, "blocks": [1, 2, 2], "dropout": 0.0, "tied": True},
    "style": {"prompt": PROMPT, "negative": None},
    "steps": 4,
}
PWNED_FILE = "pwned"


def sample_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "w.f32": torch.randn(3, 5, generator=g),
        "w.bf16": torch.randn(7, generator=g).to(torch.bfloat16),
        "w.f16": torch.randn(2, 2, generator=g).half(),
        "step": torch.tensor([2**40 + 1, -3], dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "bytes": torch.arange(256, dtype=torch.int32).to(torch.uint8),
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 4),
    }


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p != path)


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "ckpt", sample_tensors(), CONFIG)


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call into torch.load or pickle fails the test loudly."""
    def boom(*args, **kwargs):
        raise AssertionError("unpickling was attempted")
    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)


# -----------------------------------------------------------------------------
# round trips


def test_round_trip_is_exact(ckpt: Path) -> None:
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.yaml", "model.safetensors"]
    tensors, config = load_checkpoint(ckpt)
    assert_same(tensors, sample_tensors())
    assert config == CONFIG
    assert list(config) == list(CONFIG)  # key order kept
    assert all(t.device.type == "cpu" for t in tensors.values())


def test_config_yaml_is_plain_readable_unicode(ckpt: Path) -> None:
    text = (ckpt / "config.yaml").read_text(encoding="utf-8")
    assert PROMPT in text  # not \u escapes
    assert "!!" not in text


def test_load_via_model_file_path(ckpt: Path) -> None:
    tensors, config = load_checkpoint(ckpt / "model.safetensors")
    assert_same(tensors, sample_tensors())
    assert config == CONFIG


def test_odd_tensors_are_saved(tmp_path: Path) -> None:
    """Views sharing storage, transposes and grad-tracking tensors all save as values."""
    base = torch.arange(12, dtype=torch.float32)
    weight = torch.randn(4, 3, requires_grad=True)
    tensors = {"base": base, "view": base[4:], "grid": base.view(3, 4), "t": base.view(3, 4).T,
               "weight": weight, "tied": weight}
    tensors_out, _ = load_checkpoint(save_checkpoint(tmp_path / "c", tensors, {}))
    assert_same(tensors_out, {k: v.detach() for k, v in tensors.items()})


def test_extra_files(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c", sample_tensors(), CONFIG,
                           extra_files={"PROVENANCE.md": f"trained on {PROMPT}\n"})
    assert (path / "PROVENANCE.md").read_text(encoding="utf-8") == f"trained on {PROMPT}\n"
    assert is_checkpoint(path)
    for bad in ["config.yaml", "../escape", "a/b", ""]:
        with pytest.raises(ValueError, match="extra file name"):
            save_checkpoint(tmp_path / "d", {}, {}, extra_files={bad: "x"})
    assert not (tmp_path / "d").exists()
    assert not (tmp_path / "escape").exists()


# -----------------------------------------------------------------------------
# atomic replacement


def test_overwrite_replaces_and_leaves_no_siblings(ckpt: Path) -> None:
    (ckpt / "stale.txt").write_text("from the old checkpoint")
    new = {"only": torch.ones(2)}
    save_checkpoint(ckpt, new, {"v": 2})
    tensors, config = load_checkpoint(ckpt)
    assert_same(tensors, new)
    assert config == {"v": 2}
    assert not (ckpt / "stale.txt").exists()
    assert siblings(ckpt) == []


def test_failed_save_keeps_old_checkpoint(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save_file(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(checkpoint, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ckpt, {"new": torch.ones(1)}, {"v": 2})
    tensors, config = load_checkpoint(ckpt)
    assert_same(tensors, sample_tensors())
    assert config == CONFIG
    assert siblings(ckpt) == []


def test_failed_swap_restores_old_checkpoint(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the two renames is undone: the old checkpoint goes back in place."""
    real_rename = checkpoint.os.rename

    def rename(src, dst):
        if ".tmp-" in Path(src).name:
            raise OSError("power cut")
        real_rename(src, dst)
    monkeypatch.setattr(checkpoint.os, "rename", rename)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(ckpt, {"new": torch.ones(1)}, {"v": 2})
    monkeypatch.undo()
    assert load_checkpoint(ckpt)[1] == CONFIG
    assert siblings(ckpt) == []


# a save killed (os._exit: no handler runs) at each point: while writing the new files,
# before the first rename, between the two renames, before the old one is removed
KILL_AT = {"writing": ("_write_text", 0), "before_swap": ("rename", 0),
           "between_renames": ("rename", 1), "before_cleanup": ("_fsync_dir", 1)}
KILLED_SAVE = """
import os, sys, torch
from lsd import checkpoint
where, after = sys.argv[2], int(sys.argv[3])
real = getattr(checkpoint.os, where) if where == "rename" else getattr(checkpoint, where)
calls = []
def killing(*args):
    if len(calls) == after:
        os._exit(9)
    calls.append(1)
    return real(*args)
if where == "rename":
    checkpoint.os.rename = killing
else:
    setattr(checkpoint, where, killing)
checkpoint.save_checkpoint(sys.argv[1], {"new": torch.ones(1)}, {"v": 2})
"""


@pytest.mark.parametrize("point", list(KILL_AT))
def test_a_save_killed_at_any_point_leaves_one_whole_checkpoint(ckpt: Path, point: str) -> None:
    import subprocess
    import sys

    where, after = KILL_AT[point]
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(ckpt), where, str(after)])
    assert done.returncode == 9
    left = siblings(ckpt)
    assert left, "the kill left no trace: it did not hit the save"
    checkpoint.recover(ckpt)
    _, config = load_checkpoint(ckpt)  # the old one or the new one, whole
    assert config == ({"v": 2} if point in ("between_renames", "before_cleanup") else CONFIG)
    assert siblings(ckpt) == []  # the leftovers are gone
    save_checkpoint(ckpt, {"again": torch.ones(1)}, {"v": 3})  # and saving goes on
    assert load_checkpoint(ckpt)[1] == {"v": 3} and siblings(ckpt) == []


def test_unsaveable_config_touches_nothing(ckpt: Path) -> None:
    with pytest.raises(yaml.YAMLError):
        save_checkpoint(ckpt, {}, {"obj": object()})
    assert load_checkpoint(ckpt)[1] == CONFIG
    assert siblings(ckpt) == []


def test_refuses_to_replace_a_non_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError):
        save_checkpoint(tmp_path, {}, {})
    assert (tmp_path / "notes.txt").read_text() == "precious"
    (tmp_path / "file").write_text("precious")
    with pytest.raises(FileExistsError):
        save_checkpoint(tmp_path / "file", {}, {})


# -----------------------------------------------------------------------------
# refusals


def test_missing_directory() -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint("/nonexistent/ckpt")
    assert not is_checkpoint("/nonexistent/ckpt")


def test_torch_pickle_is_refused_unread(ckpt: Path, no_unpickling: None) -> None:
    model = ckpt / "model.safetensors"
    model.unlink()
    torch.save(sample_tensors(), model)
    assert model.read_bytes()[:2] == b"PK"  # torch's zip-of-pickles format
    with pytest.raises(CheckpointError, match="not a valid safetensors file") as e:
        load_checkpoint(ckpt)
    assert str(model) in str(e.value)
    assert not is_checkpoint(ckpt)


def test_legacy_torch_pickle_is_refused(ckpt: Path, no_unpickling: None) -> None:
    model = ckpt / "model.safetensors"
    with open(model, "wb") as f:
        pickle.dump({"w": [1.0, 2.0]}, f)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("data", [b"", b"\x00" * 3, bytes(range(256)) * 40,
                                  b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      "])
def test_garbage_is_refused(ckpt: Path, data: bytes, no_unpickling: None) -> None:
    (ckpt / "model.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt)


def test_truncated_file_is_refused(ckpt: Path) -> None:
    model = ckpt / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)


def test_foreign_safetensors_is_refused(ckpt: Path) -> None:
    model = ckpt / "model.safetensors"
    safetensors.torch.save_file({"w": torch.ones(2)}, str(model))
    with pytest.raises(CheckpointError, match="not an lsd checkpoint"):
        load_checkpoint(ckpt)
    safetensors.torch.save_file({"w": torch.ones(2)}, str(model),
                                metadata={"format": "lsd-checkpoint", "version": "99"})
    with pytest.raises(CheckpointError, match="unsupported checkpoint version"):
        load_checkpoint(ckpt)


def test_missing_files_are_refused(ckpt: Path) -> None:
    (ckpt / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match="missing config.yaml"):
        load_checkpoint(ckpt)
    assert not is_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_checkpoint(ckpt.parent)


def test_a_run_folder_names_the_checkpoint_inside(ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match="missing model.safetensors; the checkpoints in "
                                              "it: " + re.escape(str(ckpt)) + "$"):
        load_checkpoint(ckpt.parent)


@pytest.mark.parametrize("text", ["- a list\n- not a mapping\n", "", "a: [unclosed\n",
                                  "just a string\n"])
def test_bad_config_is_refused(ckpt: Path, text: str) -> None:
    (ckpt / "config.yaml").write_text(text)
    with pytest.raises(CheckpointError, match="config.yaml"):
        load_checkpoint(ckpt)


def test_python_tag_in_config_is_not_executed(ckpt: Path, tmp_path: Path) -> None:
    marker = tmp_path / PWNED_FILE
    (ckpt / "config.yaml").write_text(
        f'steps: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(CheckpointError, match="unreadable YAML"):
        load_checkpoint(ckpt)
    assert not marker.exists()
    assert not is_checkpoint(ckpt)
