"""lsd bench steps on small random checkpoints: one row per (model, steps), numbers that
follow from the rollouts, the FLOPs growing by one denoising step per step, the files."""

import json

import pytest

from lsd.bench.quality import evaluate_style
from lsd.cli import main
from lsd.data import VAL_SEED_START
from lsd.models import LSDModel
from test_models import randomized, small_config


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("steps")
    randomized(LSDModel(small_config()), seed=1).save(root / "teacher", {"sample": {"steps": 12}})
    randomized(LSDModel(small_config()), seed=2).save(root / "student",
                                                      {"sample": {"steps": 3, "shortcut": True}})
    return root


def test_steps_table_plot_and_numbers(checkpoints, tmp_path, capsys):
    rc = main(["bench", "steps", "--teacher", str(checkpoints / "teacher"), "--student",
               str(checkpoints / "student"), "--pruned", str(checkpoints / "teacher"),
               "--frames", "3", "--time-frames", "4", "--styles", "ink_wash,thermal",
               "--out-dir", str(tmp_path), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {(r["model"], r["steps"]): r for r in report["rows"]}
    assert list(rows) == [("teacher", 12)] + [("student", s) for s in (12, 6, 3, 2, 1)] + [("pruned", 3)]
    # the student's numbers are its rollouts', on the same seeds as lsd bench quality
    student = LSDModel.load(checkpoints / "student")
    ink = evaluate_style(student, "ink_wash", VAL_SEED_START + 100, 3, student.sample.but(steps=3))["psnr_db"]
    assert rows[("student", 3)]["per_style"]["ink_wash"] == ink
    # a frame is steps denoising passes + a fixed part: FLOPs are linear in the steps
    g = {s: rows[("student", s)]["gflops_per_frame"] for s in (12, 6, 3, 2, 1)}
    per_step = (g[12] - g[6]) / 6
    assert per_step > 0 and g[3] - g[2] == pytest.approx(per_step, abs=2e-3)
    summary = report["summary"]
    assert summary["speedup_teacher12_over_student3"] == round(
        rows[("teacher", 12)]["ms_p50"] / rows[("student", 3)]["ms_p50"], 2)
    assert summary["pruned_flops_cut"] == round(1 - rows[("pruned", 3)]["gflops_per_frame"] / g[3], 3)
    table = (tmp_path / "steps.md").read_text()
    assert f"| student | 3 | {rows[('student', 3)]['mean_psnr_db']} |" in table
    assert (tmp_path / "steps.png").stat().st_size > 1000
