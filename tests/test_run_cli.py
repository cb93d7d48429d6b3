"""`lsd run` and `lsd bench latency` end to end on a small checkpoint: schedules, files,
errors, and latest-frame-wins pacing with a deliberately slow model."""

import json
import os
import time

import numpy as np
import pytest
import torch

from lsd.checkpoint import METADATA
from lsd.cli import main
from lsd.io import read_frames, video_info
from lsd.models import LSDModel
from lsd.stream import runner
from lsd.stream.runner import parse_schedule, run_stream
from lsd.stream.sources import Source
from lsd.styles import get_style
from test_models import randomized, small_config


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model"
    randomized(LSDModel(small_config())).save(path, extra_config={"sample": {"steps": 2}})
    return path


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_parse_schedule():
    assert parse_schedule("120:thermal camera; 0:ink wash") == [(0, "ink wash"), (120, "thermal camera")]
    assert parse_schedule(None) == []
    with pytest.raises(ValueError, match="FRAME:PROMPT"):
        parse_schedule("soon:ink wash")


def test_run_synthetic_with_schedule_writes_side_by_side(ckpt, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    rc = main(["run", "--source", "synthetic:3", "--prompt-schedule", "0:ink wash;6:thermal camera",
               "--frames", "12", "--checkpoint", str(ckpt), "--out", str(out), "--side-by-side",
               "--json"])
    assert rc == 0
    summary = last_json(capsys)
    assert summary["frames"] == 12 and summary["dropped"] == 0 and summary["steps"] == 2
    assert summary["ms_p50"] <= summary["ms_p95"] <= summary["ms_p99"]
    assert summary["rss_mb_start"] > 0 and summary["rss_mb_end"] > 0
    info = video_info(out)
    assert info["frames"] == 12 and info["width"] == 2 * 32 + 2


@pytest.mark.parametrize("content", [None, b"not a video at all"])
def test_run_bad_video_file_is_one_clear_error(ckpt, tmp_path, capsys, content):
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    rc = main(["run", "--source", str(path), "--prompt", "sepia", "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("lsd: error:") and "clip.mp4" in err


def test_run_needs_a_prompt_except_on_the_synthetic_world(ckpt, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    rc = main(["run", "--source", str(folder), "--checkpoint", str(ckpt)])
    assert rc == 2 and "--prompt" in capsys.readouterr().err
    # the synthetic world's frames have a style: its canonical prompt is the default
    rc = main(["run", "--source", "synthetic:0:thermal", "--frames", "3", "--checkpoint", str(ckpt),
               "--json"])
    assert rc == 0 and last_json(capsys)["prompt"] == get_style("thermal").prompts[0]


class FastCamera(Source):
    """A live source at ~200 fps whose frames carry their number in the first pixel."""
    live, fps, name = True, 200.0, "fake camera"

    def __init__(self, total=400):
        self.n, self.total, self.times = 0, total, {}

    def read(self):
        if self.n >= self.total:
            return None
        time.sleep(0.005)
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[0, 0, 0], frame[0, 0, 1] = self.n % 256, self.n // 256
        self.times[self.n] = time.perf_counter()
        self.n += 1
        return frame


def test_slow_model_processes_the_newest_frame_and_counts_drops(ckpt, monkeypatch):
    camera = FastCamera(total=60_000)  # never runs dry on a loaded machine (and fits 2 bytes)
    monkeypatch.setattr(runner, "open_source", lambda *a, **k: camera)
    seen, lags = [], []
    real_step = runner.Stream.step

    def slow_step(self, frame):  # a model far slower than the camera
        number = int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])
        lags.append(camera.n - 1 - number)  # frames the camera made since this one
        seen.append(number)
        time.sleep(0.04)
        return real_step(self, frame)

    monkeypatch.setattr(runner.Stream, "step", slow_step)
    summary = run_stream("webcam", "ink wash", frames=25, checkpoint=str(ckpt), progress=False)
    assert summary["frames"] == 25
    assert all(b > a for a, b in zip(seen, seen[1:]))
    assert summary["dropped"] >= 25  # ~8 camera frames per model frame: most are skipped
    # always (nearly) the newest frame: a queue would fall ~8 frames further behind per step
    assert max(lags) <= 5 and np.median(lags) <= 1


def test_bench_latency_reports_the_whole_step(ckpt, capsys):
    rc = main(["bench", "latency", "--checkpoint", str(ckpt), "--frames", "20", "--warmup", "3",
               "--json"])
    assert rc == 0
    r = last_json(capsys)
    assert r["frames"] == 20 and r["steps"] == 2
    assert r["ms_p50"] <= r["ms_p95"] <= r["ms_p99"]
    assert r["gflops_per_frame"] > 0 and r["matmul_peak_gflops_per_s"] > 0.1
    assert r["dtype"] in ("float32", "bfloat16") and r["dtype_reason"]
    assert r["backend"] in ("eager", "compile", "openvino") and r["backend_reason"]
    # the share is of the unrounded rates: bound it by what the rounded ones allow (each
    # is rounded to 0.1, the share to 0.001), so rounding alone can never fail this
    achieved, peak = r["achieved_gflops_per_s"], r["matmul_peak_gflops_per_s"]
    assert (achieved - 0.05) / (peak + 0.05) - 5e-4 <= r["share_of_matmul_peak"]
    assert r["share_of_matmul_peak"] <= (achieved + 0.05) / (peak - 0.05) + 5e-4


def test_missing_shipped_checkpoint_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "CHECKPOINTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        runner.default_checkpoint()


def test_demo_runs_a_checkpoint_through_the_engine(ckpt, tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    assert main(["demo", "--out", str(out), "--seconds", "0.6", "--checkpoint", str(ckpt),
                 "--json"]) == 0
    r = last_json(capsys)
    assert r["frames"] == 15 and r["checkpoint"] == str(ckpt) and r["out"] == str(out)
    info = video_info(out)
    clip = next(iter(read_frames(out)))
    assert info["frames"] == 15 and clip.shape[1] > 2 * clip.shape[0]  # bikes | output



def test_bench_latency_profile_names_where_the_time_goes(ckpt):
    from lsd.bench.latency import bench_latency

    r = bench_latency(str(ckpt), frames=5, warmup=1, profile=True)
    ops = r["profile"]
    assert ops and all(a["ms_per_frame"] >= b["ms_per_frame"] for a, b in zip(ops, ops[1:]))
    assert 0 < sum(o["share"] for o in ops) <= 1.001
    # a transformer step: its linear layers are among the costliest ops
    assert any(o["op"] in ("aten::addmm", "aten::mm", "aten::linear") for o in ops)


@pytest.mark.parametrize("stop, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stopped_recording_keeps_every_frame_made(ckpt, tmp_path, stop, code):
    """Ctrl-C or SIGTERM to a real `lsd run --out` on an endless source: the mp4 is closed
    with the frames made so far, the summary printed, and the exit code says the signal."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "live.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "lsd.cli", "run", "--source", "synthetic:3",
                             "--checkpoint", str(ckpt), "--out", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob(".live.mp4.*.part")):
        time.sleep(0.05)
    time.sleep(1.0)  # some frames into the recording
    proc.send_signal(getattr(signal, stop))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["stopped_by"] == stop and summary["frames"] >= 2
    assert len(list(read_frames(out))) == summary["frames"]  # every frame made is in the file
    assert not list(tmp_path.glob(".*.part"))
    assert f"stopped by {stop}" in stderr and "Traceback" not in stderr


def test_bad_run_options_are_one_line_before_any_work(ckpt, tmp_path, capsys):
    """Each is refused at start-up with one line and rc 2, nothing written."""
    run = lambda *extra: main(["run", "--source", "synthetic:1", "--frames", "3",
                               "--checkpoint", str(ckpt), *extra])
    folder = tmp_path / "a folder"
    folder.mkdir()
    for extra, words in [(["--out", str(folder)], "is a folder"),
                         (["--out", "/dev/null"], "not a regular file"),
                         (["--device", "banana"], "unknown device"),
                         (["--frames", "-5"], "--frames must be at least 1"),
                         (["--prompt", "x" * 201], "prompt too long")]:
        assert run(*extra) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(folder.iterdir()) == [] and os.path.exists("/dev/null")
    assert not os.path.isfile("/dev/null")  # still the device, never renamed over


def test_json_output_never_holds_nan():
    from lsd.cli_args import finite

    value = {"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf")}, "e": "x"}
    assert finite(value) == {"a": None, "b": [1.5, None], "c": {"d": None}, "e": "x"}
    json.loads(json.dumps(finite(value), allow_nan=False))


def test_a_broken_checkpoint_is_refused_before_it_runs(ckpt, tmp_path, capsys):
    """Non-finite weights, and a config whose shapes the weights do not have (checked
    without allocating the model it describes: dim 200000 would take 160 GB)."""
    import shutil

    import yaml
    from safetensors.torch import load_file, save_file

    nan = tmp_path / "nan"
    shutil.copytree(ckpt, nan)
    tensors = load_file(nan / "model.safetensors")
    tensors["denoiser.out.weight"] = torch.full_like(tensors["denoiser.out.weight"], float("nan"))
    save_file(tensors, nan / "model.safetensors", metadata=METADATA)
    huge = tmp_path / "huge"
    shutil.copytree(ckpt, huge)
    config = yaml.safe_load((huge / "config.yaml").read_text())
    config["model"]["denoiser"]["dim"] = 200000
    (huge / "config.yaml").write_text(yaml.safe_dump(config))
    for path, words in [(nan, "NaN or inf"), (huge, "shapes do not match")]:
        t0 = time.time()
        assert main(["run", "--source", "synthetic:1", "--frames", "2", "--prompt", "sepia",
                     "--checkpoint", str(path)]) == 2
        assert words in capsys.readouterr().err and time.time() - t0 < 30


def test_a_truncated_input_file_is_run_with_a_warning(ckpt, tmp_path, capsys):
    from lsd.io import write_video

    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    write_video(path, [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(40)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the index (at the front) still says 40
    assert main(["run", "--source", str(path), "--prompt", "sepia photo", "--checkpoint", str(ckpt),
                 "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert 0 < summary["frames"] < 40
    assert f"declares 40 frames but only {summary['frames']} could be read" in captured.err
    assert summary["warning"] and "truncated" in summary["warning"]
    assert main(["run", "--source", str(path), "--prompt", "sepia photo", "--checkpoint", str(ckpt),
                 "--frames", "3", "--json"]) == 0  # fewer asked than it has: no warning
    assert "warning" not in capsys.readouterr().err


def test_a_full_disk_is_one_line_and_leaves_no_part_file(ckpt, tmp_path, capsys, monkeypatch):
    from lsd.io import VideoWriter

    def full(self, frame):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(VideoWriter, "write", full)
    assert main(["run", "--source", "synthetic:1", "--frames", "3", "--checkpoint", str(ckpt),
                 "--out", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_summary_says_what_the_prompt_was_understood_as(ckpt, capsys, monkeypatch):
    from lsd.stream import understood

    run = lambda prompt: main(["run", "--source", "synthetic:1", "--frames", "2", "--prompt",
                               prompt, "--checkpoint", str(ckpt), "--json"])
    assert run("sepia photo") == 0
    summary = last_json(capsys)
    assert summary["understood_as"].startswith("sepia ") and summary["prompt_warning"] is None
    monkeypatch.setattr(understood, "UNKNOWN", 1.01)
    assert run("underwater coral reef") == 0
    captured = capsys.readouterr()
    assert "lsd: warning: 'underwater coral reef' names no look" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["prompt_warning"]
