"""The checkpoint format: a directory with model.safetensors (tensors) and config.yaml.

Loading never unpickles anything: tensors come from safetensors, the config from
yaml.safe_load, so a checkpoint downloaded from a stranger cannot run code. Saving is
atomic: the directory is built as a hidden sibling and renamed into place, so a reader
sees the old checkpoint or the new one, never half of one.
"""

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
RESERVED_FILES = (MODEL_FILE, CONFIG_FILE)
FORMAT_NAME = "lsd-checkpoint"
FORMAT_VERSION = "1"
METADATA = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
TMP_TAG = ".tmp-"  # .NAME.tmp-<random>: the new checkpoint while it is being written
OLD_TAG = ".old-"  # .NAME.old-<random>: the replaced checkpoint, for the moment of the swap
RANDOM_HEX = 12  # hex digits of a uuid4 in sibling names


class CheckpointError(ValueError):
    """A checkpoint that exists but is broken, foreign or unsafe to read."""


# -----------------------------------------------------------------------------
# saving


def _cpu_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU tensors; safetensors refuses tensors that share storage,
    so each tensor after the first on a given storage (a view, a tied weight) is cloned."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise TypeError(f"expected str -> torch.Tensor, got {type(name).__name__} -> "
                            f"{type(t).__name__} for {name!r}")
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        elif t.numel():
            seen.add(ptr)
        out[name] = t
    return out


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Makes renames and new entries in a directory durable (POSIX; Windows cannot)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _check_extra_names(extra_files: Mapping[str, str]) -> None:
    for name in extra_files:
        plain = name not in ("", ".", "..") and "/" not in name and "\\" not in name
        if not plain or name in RESERVED_FILES:
            raise ValueError(f"bad extra file name {name!r}: must be a plain file name "
                             f"other than {', '.join(RESERVED_FILES)}")


def _check_replaceable(path: Path) -> None:
    """Only a checkpoint (or an empty directory) may be replaced: a typo like `.` as the
    path must not delete a directory full of other things."""
    if not path.exists():
        return
    if not path.is_dir():
        raise FileExistsError(f"cannot save checkpoint over a file: {path}")
    if any(path.iterdir()) and not (path / MODEL_FILE).is_file():
        raise FileExistsError(f"refusing to replace a directory that is not a checkpoint: "
                              f"{path}")


def recover(path: str | os.PathLike) -> None:
    """Finish a swap that a crash cut short, then clear the swap's leftovers. A save writes
    the new checkpoint into .NAME.tmp-TAG, renames the old one to .NAME.old-TAG and the new
    one to NAME: killed between the renames, NAME is missing, and the complete new one (or,
    if that is gone, the old one) takes its place. Any other .tmp-/.old- folder of NAME is
    a save that never got that far, and is removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for old in sorted(path.parent.glob(f".{path.name}{OLD_TAG}*")):
        if not path.exists():
            new = path.parent / f".{path.name}{TMP_TAG}{old.name[-RANDOM_HEX:]}"
            os.rename(new if new.is_dir() else old, path)
    for tag in (TMP_TAG, OLD_TAG):
        for leftover in path.parent.glob(f".{path.name}{tag}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                    config: Mapping, extra_files: Mapping[str, str] | None = None) -> Path:
    """Writes the checkpoint directory at `path` atomically, replacing any old one.

    extra_files are small text files (name -> content) stored beside the model, e.g.
    provenance notes. Returns the checkpoint's path.
    """
    path = Path(path)
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    extra_files = dict(extra_files or {})
    _check_extra_names(extra_files)
    # everything that can fail on bad input fails before anything touches the disk
    config_text = yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
    cpu = _cpu_tensors(tensors)
    recover(path)  # an earlier save killed mid-way
    _check_replaceable(path)

    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:RANDOM_HEX]
    tmp = parent / f".{path.name}{TMP_TAG}{tag}"
    old = parent / f".{path.name}{OLD_TAG}{tag}"
    tmp.mkdir()
    try:
        save_file(cpu, str(tmp / MODEL_FILE), metadata=METADATA)
        _fsync_file(tmp / MODEL_FILE)
        _write_text(tmp / CONFIG_FILE, config_text)
        for name, text in extra_files.items():
            _write_text(tmp / name, text)
        _fsync_dir(tmp)

        if path.exists():
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)  # put the old checkpoint back before giving up
                raise
        else:
            os.rename(tmp, path)
        _fsync_dir(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed
    shutil.rmtree(old, ignore_errors=True)
    return path


# -----------------------------------------------------------------------------
# loading


def _checkpoint_dir(path: str | os.PathLike) -> Path:
    """The checkpoint directory for `path`, which may also name its model.safetensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_file() and path.name == MODEL_FILE:
        return path.parent
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory or its {MODEL_FILE}")
    if not (path / MODEL_FILE).exists():  # a run's folder? `lsd learn` writes OUT/model
        inside = [str(p) for p in sorted(path.iterdir()) if (p / MODEL_FILE).is_file()]
        if inside:
            raise CheckpointError(f"{path}: missing {MODEL_FILE}; the checkpoints in it: "
                                  f"{', '.join(inside)}")
    return path


def _read_metadata(model: Path) -> None:
    """Checks the safetensors header and our format tag, reading no tensor data."""
    if not model.is_file():
        raise CheckpointError(f"{model.parent}: missing {MODEL_FILE}")
    try:
        with safe_open(str(model), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{model}: not a valid safetensors file ({e})") from e
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{model}: not an lsd checkpoint (safetensors metadata has "
                              f"format={metadata.get('format')!r}, expected {FORMAT_NAME!r})")
    if metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{model}: unsupported checkpoint version "
                              f"{metadata.get('version')!r}, expected {FORMAT_VERSION!r}")


def _read_config(config_path: Path) -> dict:
    if not config_path.is_file():
        raise CheckpointError(f"{config_path.parent}: missing {CONFIG_FILE}")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise CheckpointError(f"{config_path}: unreadable YAML ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a mapping at the top, got "
                              f"{type(config).__name__}")
    return config


def load_checkpoint(path: str | os.PathLike,
                    device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Returns (tensors, config) of the checkpoint at `path`, tensors on `device`."""
    root = _checkpoint_dir(path)
    model = root / MODEL_FILE
    _read_metadata(model)
    config = _read_config(root / CONFIG_FILE)
    try:
        tensors = load_file(str(model), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{model}: not a valid safetensors file ({e})") from e
    return tensors, config


def read_config(path: str | os.PathLike) -> dict:
    """The config.yaml of the checkpoint at `path`, checking the format but loading no tensors."""
    root = _checkpoint_dir(path)
    _read_metadata(root / MODEL_FILE)
    return _read_config(root / CONFIG_FILE)


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True if `path` holds a readable checkpoint; checks headers, loads no tensors."""
    try:
        read_config(path)
    except (CheckpointError, FileNotFoundError):
        return False
    return True
