"""`lsd prompts`: a prompt reader is trained and nothing else changes, a held-out set is
never trained on, paraphrases are read as their look, and a stream on a model with a
reader plays a paraphrase as its look and keeps its look when asked for an unknown one."""

import random

import numpy as np
import pytest
import torch

from lsd.cli import main
from lsd.config import ReaderConfig
from lsd.models import LSDModel, normalize_prompt
from lsd.models.prompt_reader import NONE, grams
from lsd.stream import Stream
from lsd.styles import STYLES
from lsd.styles.phrases import BANK, ELSEWHERE, LOOK_WORDS, paraphrase
from lsd.train import prompts
from test_models import randomized, small_config

HELD_OUT = "tests/data/prompts_heldout.txt"


def held_out() -> list[tuple[str, str]]:
    lines = open(HELD_OUT, encoding="utf-8").read().splitlines()
    return [tuple(line.split("\t")) for line in lines if line.strip() and not line.startswith("#")]


def test_every_look_has_a_bank_and_paraphrases_vary():
    assert set(BANK) == set(STYLES)
    rng = random.Random(0)
    assert len({paraphrase("thermal", rng) for _ in range(50)}) > 30
    assert len({paraphrase(None, rng) for _ in range(50)}) > 30
    trained = {normalize_prompt(p) for s in STYLES.values() for p in s.prompts}
    assert not trained & {normalize_prompt(p) for p in ELSEWHERE}


def test_a_taught_look_is_read_with_the_words_people_add_to_its_name():
    """Before, "ocean colours" and "ocean palette" went to retro_palette (its bank says
    "game boy colours"), "ocean tones" to sepia."""
    rng = random.Random(0)
    said = [paraphrase("ocean", rng, ["ocean"]) for _ in range(400)]
    assert 0.25 < np.mean([any(f"ocean {w}" in s for w in LOOK_WORDS) for s in said]) < 0.6
    looks = {k: list(s.prompts) for k, s in STYLES.items()} | {"ocean": ["ocean"]}
    reader, _ = prompts.train_reader(ReaderConfig(looks=looks), steps=600, progress=False)
    asked = ["ocean colours", "ocean palette", "ocean tones", "ocean hues"]  # hues: no LOOK_WORD
    assert [look for look, p, _ in reader.read(asked) if p > 0.5] == ["ocean"] * 4
    assert reader.read(["8-bit retro palette"]) == [("retro_palette", 1.0, True)]


def test_grams_hash_alike_everywhere_and_share_most_with_a_typo():
    assert grams("Thermal  CAMERA", 1 << 14) == grams("thermal camera", 1 << 14)
    a, b = set(grams("thermal camera", 1 << 14)), set(grams("termal camera", 1 << 14))
    assert len(a & b) > len(a) / 2
    assert len(set(grams("水墨画", 1 << 14)) & set(grams("中国水墨", 1 << 14))) >= 3


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    """A small random model, and the same with a reader taught for 600 steps."""
    root = tmp_path_factory.mktemp("prompts")
    model = randomized(LSDModel(small_config()))
    model.save(root / "src", {"sample": {"steps": 2}, "step": 5})
    report = prompts.teach_prompts(str(root / "src"), str(root / "run"), steps=600,
                                   avoid=[HELD_OUT], progress=False)
    return root / "src", root / "run" / "model", report


def test_lsd_prompts_adds_a_reader_and_changes_nothing_else(taught):
    src, out, report = taught
    before, after = LSDModel.load(src), LSDModel.load(out)
    assert before.reader is None and set(after.reader.classes) == {*STYLES, NONE}
    reader_keys = {k for k in after.state_dict() if k.startswith("reader.")}
    assert reader_keys and set(after.state_dict()) - reader_keys == set(before.state_dict())
    assert all(torch.equal(after.state_dict()[k], v) for k, v in before.state_dict().items())
    assert after.checkpoint_config["step"] == 5 and after.checkpoint_config["sample"] == {"steps": 2}
    assert report["avoided"] == [HELD_OUT] and after.checkpoint_config["prompts"]["steps"] == 600
    # every prompt the model was trained on is embedded exactly as before: its looks stay
    trained = [p for s in STYLES.values() for p in s.prompts]
    with torch.no_grad():
        assert torch.equal(after.encode_prompts(trained), before.encode_prompts(trained))


def test_the_held_out_phrasings_are_never_trained_on(tmp_path, monkeypatch):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "src")
    held = tmp_path / "held.txt"
    held.write_text("# comment\nthermal\tlike a heat camera\n", encoding="utf-8")
    said = iter(["LIKE A HEAT CAMERA"] * 3)  # the held-out one, in another case
    real = prompts.paraphrase
    seen, read = [], []
    monkeypatch.setattr(prompts, "paraphrase",
                        lambda look, rng, *own: seen.append(t := next(said, None) or real(look, rng, *own)) or t)
    forward = prompts.PromptReader.forward
    monkeypatch.setattr(prompts.PromptReader, "forward", lambda self, texts: read.extend(texts)
                        or forward(self, texts))
    prompts.teach_prompts(str(tmp_path / "src"), str(tmp_path / "run"), steps=3, batch=8,
                          avoid=[str(held)], progress=False)
    assert "LIKE A HEAT CAMERA" in seen and "LIKE A HEAT CAMERA" not in read and len(read) == 24


def test_the_reader_reads_held_out_phrasings_as_their_look(taught):
    _, out, _ = taught
    reader = LSDModel.load(out).reader
    rows = held_out()
    looks = [look for look, _, _ in reader.read([text for _, text in rows])]
    right = sum(look == meant for look, (meant, _) in zip(looks, rows))
    assert right >= 0.8 * len(rows), f"{right} of {len(rows)}"
    assert reader.read(["thermal camera"]) == [("thermal", 1.0, True)]  # a trained prompt


def test_a_stream_plays_a_paraphrase_as_its_look_and_keeps_its_look_for_an_unknown_one(taught):
    _, out, _ = taught
    s = Stream.from_pretrained(out, prompt="make it look like a heat camera", dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(s._embedding, s.model.text(["thermal camera"]))
    assert s.understood[0]["look"] == "thermal" and s.understood[0]["known"] and s.warning is None
    playing = s._embedding.clone()
    s.set_prompt("a horse", blend_frames=0)  # in the "none" bank
    assert s.understood[0]["known"] is False and torch.equal(s._embedding, playing)
    assert s.prompt == "make it look like a heat camera" and "still playing" in s.warning
    s.set_prompt("sepia photo + pencil sketch", blend_frames=0)  # a mix of trained prompts
    assert s.stats["understood_as"] == "sepia 1.00 x0.5 + pencil_sketch 1.00 x0.5"
    assert s.warning is None


def test_lsd_prompts_refuses_an_existing_out(taught, capsys):
    src, out, _ = taught
    assert main(["prompts", "--checkpoint", str(src), "--out", str(out.parent)]) == 2
    assert "exists" in capsys.readouterr().err
