"""`lsd prompts`: teach a model's prompt encoder the ways people name its looks.

The denoiser only knows the prompt embeddings it was trained with, so the cheap route is to
leave it, and the codec, as they are and train the prompt encoder alone: a paraphrase of a
look (lsd.styles.phrases) is pulled to the embedding the look's first prompt has now, while
every training prompt is held at its own embedding (so what worked still works). A few
minutes on a CPU; `lsd bench real --prompts` measures what it changed.
"""

from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..models import load, normalize_prompt
from ..precision import STORAGE
from ..styles import STYLES
from ..styles.phrases import paraphrase

HELD_PROMPTS = 16  # training prompts held in place in each step's batch


def read_avoided(path: str | Path | None) -> set[str]:
    """The phrasings never to train on (the last tab-separated field of each line of a
    held-out file; # starts a comment), normalised as the encoder reads them."""
    if path is None:
        return set()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {normalize_prompt(line.split("\t")[-1]) for line in lines
            if line.strip() and not line.startswith("#")}


def teach_prompts(checkpoint: str, out: str, steps: int = 1200, batch: int = 64,
                  lr: float = 3e-4, seed: int = 0, avoid: str | None = None,
                  progress: bool = True) -> dict:
    """Write OUT/model: `checkpoint` with its prompt encoder trained as above; `avoid`
    names a file of phrasings never to train on (a held-out set)."""
    if steps < 1 or batch < 1 or lr <= 0:
        raise ValueError("--steps and --batch must be at least 1 and --lr above 0")
    if (Path(out) / "model").exists():
        raise FileExistsError(f"{Path(out) / 'model'} exists: pick another --out")
    t0 = time.time()
    avoided = read_avoided(avoid)
    model = load(checkpoint, dtype=torch.float32)
    before = copy.deepcopy(model.text).eval().requires_grad_(False)
    looks = list(STYLES)
    with torch.no_grad():
        held = [(p, before([p])[0]) for name in looks for p in STYLES[name].prompts]
        target = {name: before([STYLES[name].prompts[0]])[0] for name in looks}
    rng = random.Random(seed)

    def asked(look: str) -> str:  # a paraphrase that is not in the avoided set
        while normalize_prompt(text := paraphrase(look, rng)) in avoided:
            pass
        return text

    torch.manual_seed(seed)
    text = model.text.train()
    opt = torch.optim.AdamW(text.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in tqdm(range(steps), desc="prompt encoder", disable=not progress):
        names = [rng.choice(looks) for _ in range(batch)]
        kept = rng.sample(held, min(HELD_PROMPTS, len(held)))
        loss = (((text([asked(n) for n in names]) - torch.stack([target[n] for n in names])) ** 2).mean()
                + ((text([p for p, _ in kept]) - torch.stack([e for _, e in kept])) ** 2).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    text.eval()
    report = {"source": str(checkpoint), "steps": steps, "batch": batch, "lr": lr, "seed": seed,
              "avoided": str(avoid) if avoid else None,
              "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 5),
              "seconds": round(time.time() - t0, 1)}
    extra = {k: v for k, v in model.checkpoint_config.items() if k not in ("lsd_version", "model")}
    model.save(Path(out) / "model", extra | {"prompts": report}, dtype=STORAGE)
    return {"model": str(Path(out) / "model"), **report}
