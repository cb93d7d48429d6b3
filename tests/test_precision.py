"""lsd.precision: the compute dtype a device gets, decided once, for every command.

The decision is tested with faked CPU capabilities, so both branches run on any machine;
`test_forced_*` then force each choice through LSD_DTYPE and --dtype end to end."""

import json

import pytest
import torch

from lsd import precision
from lsd.cli import main
from lsd.models import LSDModel, load
from lsd.precision import decide
from lsd.stream.engine import Stream
from test_models import randomized, small_config
from test_stream_engine import frames

NATIVE = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
AVX2 = {"avx2", "fma", "avx"}


@pytest.fixture(autouse=True)
def no_choice_told(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    precision.ask(None)
    yield
    precision.ask(None)


def probe_never_runs():
    raise AssertionError("a CPU without native bf16 needs no probe")


def test_an_avx2_cpu_gets_fp32_without_probing():
    p = decide("cpu", flags=AVX2, speedup=probe_never_runs)
    assert p.dtype == torch.float32 and "no native bf16" in p.reason


def test_a_native_bf16_cpu_gets_bf16_when_measured_faster():
    p = decide("cpu", flags=NATIVE, speedup=lambda: 4.2)
    assert p.dtype == torch.bfloat16
    assert "amx_bf16" in p.reason and "4.2x" in p.reason
    assert p.to_dict() == {"dtype": "bfloat16", "dtype_reason": p.reason}


def test_native_flags_alone_are_not_enough_the_probe_decides():
    # a hypervisor or ONEDNN_MAX_CPU_ISA can hide what the flags advertise
    p = decide("cpu", flags=NATIVE, speedup=lambda: 0.01)
    assert p.dtype == torch.float32 and "0.01x" in p.reason


def test_without_cpu_flags_the_probe_alone_decides():
    assert decide("cpu", flags=None, speedup=lambda: 3.0).dtype == torch.bfloat16
    assert decide("cpu", flags=None, speedup=lambda: 1.0).dtype == torch.float32


def test_cuda_gets_bf16():
    assert decide("cuda", flags=AVX2, speedup=probe_never_runs).dtype == torch.bfloat16


def test_asked_beats_the_command_line_beats_the_environment_beats_the_decision(monkeypatch):
    monkeypatch.setenv(precision.ENV, "bf16")
    p = decide("cpu", flags=AVX2, speedup=probe_never_runs)
    assert p.dtype == torch.bfloat16 and p.reason == "LSD_DTYPE=bfloat16"
    precision.ask("float32")
    assert decide("cpu").reason == "--dtype float32"
    assert decide("cpu", "bfloat16").dtype == torch.bfloat16  # a caller's own choice
    precision.ask("auto")  # back to the environment
    assert decide("cpu").dtype == torch.bfloat16


def test_a_bad_dtype_says_what_is_allowed(monkeypatch):
    with pytest.raises(ValueError, match="auto, float32, bfloat16"):
        decide("cpu", "float16")
    monkeypatch.setenv(precision.ENV, "half")
    with pytest.raises(ValueError, match="LSD_DTYPE"):
        decide("cpu")


def test_the_probe_runs_once_per_process(monkeypatch):
    precision.bf16_speedup.cache_clear()
    calls = []
    real = precision._rate
    monkeypatch.setattr(precision, "_rate", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    first = precision.bf16_speedup()
    assert precision.bf16_speedup() == first > 0 and 2 <= len(calls) <= 4


def test_a_cold_first_bf16_product_is_measured_again(monkeypatch):
    """A single slow bf16 product (kernels built on first use, a busy core) once read as
    "emulated" and sent an AMX machine to fp32: it is looked at again before that."""
    precision.bf16_speedup.cache_clear()
    rates = iter([100.0, 5.0, 240.0, 260.0])  # fp32; bf16 cold, again, careful
    monkeypatch.setattr(precision, "_rate", lambda *a, **kw: next(rates))
    assert precision.bf16_speedup() == 2.6
    precision.bf16_speedup.cache_clear()
    rates = iter([100.0, 1.0, 1.1])  # emulated twice: no careful measurement
    monkeypatch.setattr(precision, "_rate", lambda *a, **kw: next(rates))
    assert precision.bf16_speedup() == pytest.approx(0.011)
    precision.bf16_speedup.cache_clear()


def test_loading_casts_to_the_compute_dtype_and_keeps_the_storage(tmp_path):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "m", dtype=precision.STORAGE)
    assert next(load(tmp_path / "m").parameters()).dtype == torch.bfloat16  # as stored
    fp32 = load(tmp_path / "m", dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in fp32.parameters())
    stored = load(tmp_path / "m")
    for (name, a), b in zip(fp32.state_dict().items(), stored.state_dict().values()):
        assert torch.equal(a, b.float()), name  # a bf16 value casts to fp32 exactly


@pytest.mark.parametrize("forced", ["float32", "bfloat16"])
def test_forced_choice_reaches_the_stream_and_its_stats(tmp_path, monkeypatch, forced):
    randomized(LSDModel(small_config())).save(tmp_path / "m", dtype=precision.STORAGE)
    monkeypatch.setenv(precision.ENV, forced)
    s = Stream.from_pretrained(tmp_path / "m", prompt="ink wash")
    s.step(frames(1)[0])
    assert s.dtype == getattr(torch, forced) == next(s.model.parameters()).dtype
    assert s.stats["dtype"] == forced and s.stats["dtype_reason"] == f"LSD_DTYPE={forced}"


@pytest.mark.parametrize("forced", ["float32", "bfloat16"])
def test_forced_choice_on_the_command_line_is_in_the_json(tmp_path, capsys, forced):
    randomized(LSDModel(small_config())).save(tmp_path / "m", extra_config={"sample": {"steps": 1}})
    assert main(["bench", "latency", "--checkpoint", str(tmp_path / "m"), "--frames", "3",
                 "--warmup", "1", "--dtype", forced, "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["dtype"] == forced and r["dtype_reason"] == f"--dtype {forced}"


def test_every_model_command_takes_dtype():
    from lsd.cli import build_parser

    parser = build_parser()
    for argv in (["demo"], ["run", "--source", "x"], ["serve"], ["train", "--config", "c"],
                 ["distill", "--teacher", "t", "--out", "o"], ["prune", "--checkpoint", "c",
                 "--out", "o"], ["decoder", "--checkpoint", "c", "--out", "o"],
                 ["bench", "latency"], ["bench", "quality", "--checkpoint", "c"]):
        assert parser.parse_args(argv + ["--dtype", "float32"]).dtype == "float32", argv
