"""`lsd bench real --prompts`: which look a phrasing lands on, judged by the output."""

import json
from pathlib import Path

import numpy as np
import pytest

from lsd.bench import prompts
from lsd.bench.prompts import read_phrasings
from lsd.cli import main
from lsd.io import to_uint8
from lsd.models import LSDModel
from lsd.styles import get_style, style_names
from test_models import randomized, small_config

HELD_OUT = Path(__file__).parent / "data" / "prompts_heldout.txt"


def test_the_held_out_set_has_eight_phrasings_a_frame_look_none_trained_on():
    from lsd.styles import STYLES, style_names

    pairs = read_phrasings(HELD_OUT)
    for look in style_names("frame"):
        said = [text for meant, text in pairs if meant == look]
        assert len(said) >= 8, look
        assert any(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in said), look  # Chinese
    from lsd.models import normalize_prompt  # what the encoder reads

    trained = {normalize_prompt(p) for s in STYLES.values() for p in s.prompts}
    assert not trained & {normalize_prompt(text) for _, text in pairs}


def test_bad_phrasing_files_are_refused_by_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("# a comment\nsepia old photo\n")
    with pytest.raises(ValueError, match="bad.txt:2: expected LOOK<TAB>phrasing"):
        read_phrasings(bad)
    bad.write_text("pop_art\ta poster\n")
    with pytest.raises(ValueError, match="memory style"):
        read_phrasings(bad)


def test_a_prompt_lands_on_the_look_whose_canonical_output_is_nearest(tmp_path, monkeypatch, capsys):
    """A model that draws every phrasing of sepia as "sepia photo" lands them on sepia, and
    one whose cartoon comes out nearer retro_palette's reference (as on bikes) still lands
    cartoon's phrasings on cartoon: that weakness is canonical_landed_on's to report."""
    ckpt = tmp_path / "m"
    randomized(LSDModel(small_config())).save(ckpt, extra_config={"sample": {"steps": 2}})
    file = tmp_path / "p.txt"
    file.write_text("sepia\tan old brown photo\nthermal\ta heat camera\nsepia\t老照片风格\n"
                    "cartoon\tcomic book style\nnone\ta dog\nnone\ta cat\n", encoding="utf-8")
    draws = {get_style(look).prompts[0]: look for look in style_names("frame")}
    draws |= {"an old brown photo": "sepia", "老照片风格": "sepia", "a heat camera": "sepia",
              "comic book style": "cartoon"}

    class Drawn:
        def __init__(self, model, text, sample):
            self.look = draws.get(text, "sepia")
            self.warning = "no look" if text in ("a dog", "a heat camera") else None

        def step(self, x):
            look = "retro_palette" if self.look == "cartoon" else self.look
            out = get_style(look).renderer()(x.astype(np.float32) / 255.0)
            return to_uint8(out * (0.9 if self.look == "cartoon" else 1.0))  # not retro's own

    monkeypatch.setattr(prompts, "Stream", Drawn)
    assert main(["bench", "real", "--prompts", str(file), "--checkpoint", str(ckpt),
                 "--frames", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["landed_on"] for r in report["rows"]] == ["sepia"] * 3 + ["cartoon"]
    assert report["accuracy"] == 0.75 and report["frames"] == 3
    assert report["confusion"] == {"sepia": {"sepia": 2}, "thermal": {"sepia": 1},
                                   "cartoon": {"cartoon": 1}}
    assert [m["prompt"] for m in report["missed"]] == ["a heat camera"]
    assert report["canonical_landed_on"]["cartoon"] == "retro_palette"
    assert report["canonical_landed_on"]["thermal"] == "thermal"
    assert report["doubted"] == 1 and (report["unknown_caught"], report["unknown_prompts"]) == (1, 2)
