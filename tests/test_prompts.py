"""`lsd prompts`: only the prompt encoder is trained, paraphrases move toward their look,
and a held-out set is never trained on."""

import json
import random

import torch

from lsd.cli import main
from lsd.models import LSDModel
from lsd.styles import STYLES
from lsd.styles.phrases import BANK, paraphrase
from lsd.train import prompts
from test_models import randomized, small_config


def test_every_look_has_a_bank_and_paraphrases_vary():
    assert set(BANK) == set(STYLES)
    rng = random.Random(0)
    said = {paraphrase("thermal", rng) for _ in range(50)}
    assert len(said) > 30


def test_lsd_prompts_trains_only_the_prompt_encoder(tmp_path, capsys, monkeypatch):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "src", {"sample": {"steps": 2}, "step": 5})
    held_out = tmp_path / "held.txt"
    held_out.write_text("# comment\nthermal\tlike a heat camera\n", encoding="utf-8")
    seen = []
    real = prompts.paraphrase
    said = iter(["LIKE A HEAT CAMERA"] * 3)  # the held-out one, in another case: never used

    def recorded(look, rng):
        text = next(said, None) or real(look, rng)
        seen.append(text)
        return text
    monkeypatch.setattr(prompts, "paraphrase", recorded)
    trained_on = []
    forward = LSDModel(small_config()).text.__class__.forward

    def spy(self, texts):
        trained_on.extend(texts)
        return forward(self, texts)
    monkeypatch.setattr(type(model.text), "forward", spy)
    assert main(["prompts", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "run"),
                 "--steps", "3", "--avoid", str(held_out), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["steps"] == 3 and report["avoided"] == str(held_out)
    assert "LIKE A HEAT CAMERA" in seen and "LIKE A HEAT CAMERA" not in trained_on
    out = LSDModel.load(tmp_path / "run" / "model")
    src = LSDModel.load(tmp_path / "src")
    changed = [k for k, v in src.state_dict().items()  # saved in bf16 (STORAGE)
               if not torch.equal(out.state_dict()[k], v.to(out.state_dict()[k].dtype))]
    assert changed and all(k.startswith("text.") for k in changed)
    assert out.checkpoint_config["step"] == 5 and out.checkpoint_config["sample"] == {"steps": 2}
    assert out.checkpoint_config["prompts"]["source"] == str(tmp_path / "src")
    assert main(["prompts", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "run")]) == 2
    assert "exists" in capsys.readouterr().err


def test_paraphrases_move_toward_their_looks_first_prompt():
    model = randomized(LSDModel(small_config()))
    import copy
    import torch.nn.functional as F

    before = copy.deepcopy(model.text)
    rng = random.Random(1)
    asked = [paraphrase("sepia", rng) for _ in range(16)]
    with torch.no_grad():
        goal = before([STYLES["sepia"].prompts[0]])
        far = F.mse_loss(before(asked), goal.expand(16, -1)).item()
    text = model.text.float().train()
    opt = torch.optim.AdamW(text.parameters(), lr=3e-3)
    for _ in range(30):  # the objective alone, on one look
        loss = F.mse_loss(text([paraphrase("sepia", rng) for _ in range(16)]), goal.expand(16, -1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert F.mse_loss(text.eval()(asked), goal.expand(16, -1)).item() < far / 2
