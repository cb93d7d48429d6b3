"""`lsd prompts`: teach a model to read the ways people name its looks.

The denoiser only knows the prompt embeddings it was trained with, so nothing of it, the
codec or the prompt encoder changes: a prompt reader (lsd.models.prompt_reader) is trained
to name the look a paraphrase asks for (lsd.styles.phrases: synonyms, descriptions, Chinese,
templates, typos), or "none" for a prompt that asks for something LSD does not have. About
half a minute on a CPU; `lsd bench real --prompts` measures it on the output.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import ReaderConfig
from ..models import load, normalize_prompt
from ..models.prompt_reader import NONE, PromptReader
from ..styles import STYLES
from ..styles.phrases import paraphrase


def read_avoided(paths: list[str | Path] | None) -> set[str]:
    """The phrasings never to train on (the last tab-separated field of each line of a
    held-out file; # starts a comment), normalised as the reader reads them."""
    avoided = set()
    for path in paths or []:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        avoided |= {normalize_prompt(line.split("\t")[-1]) for line in lines
                    if line.strip() and not line.startswith("#")}
    return avoided


def train_reader(cfg: ReaderConfig, steps: int = 2000, batch: int = 128, lr: float = 0.03,
                 seed: int = 0, avoided: set[str] = frozenset(),
                 progress: bool = True) -> tuple[PromptReader, list[float]]:
    """A prompt reader for cfg.looks, trained on paraphrases of each (and of no look) that
    are not in `avoided`; and its losses."""
    torch.manual_seed(seed)
    reader = PromptReader(cfg).train()
    rng = random.Random(seed)

    def asked(look: str) -> str:  # a phrasing that is not in the avoided set
        prompts = cfg.looks.get(look) if look not in STYLES else None
        while normalize_prompt(text := paraphrase(None if look == NONE else look, rng, prompts)) in avoided:
            pass
        return text

    opt = torch.optim.AdamW(reader.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in tqdm(range(steps), desc="prompt reader", disable=not progress):
        classes = [rng.randrange(len(reader.classes)) for _ in range(batch)]
        logits = reader([asked(reader.classes[c]) for c in classes])
        loss = F.cross_entropy(logits, torch.tensor(classes), label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return reader.eval(), losses


def teach_prompts(checkpoint: str, out: str, steps: int = 2000, batch: int = 128,
                  lr: float = 0.03, seed: int = 0, avoid: list[str] | None = None,
                  progress: bool = True) -> dict:
    """Write OUT/model: `checkpoint` with a prompt reader for every look; `avoid` names
    files of phrasings never to train on (held-out sets)."""
    if steps < 1 or batch < 1 or lr <= 0:
        raise ValueError("--steps and --batch must be at least 1 and --lr above 0")
    if (Path(out) / "model").exists():
        raise FileExistsError(f"{Path(out) / 'model'} exists: pick another --out")
    t0 = time.time()
    model = load(checkpoint)  # as stored: every weight but the reader's is saved unchanged
    stored = next(model.text.parameters()).dtype
    taught = {k: v for k, v in model.config.reader.looks.items() if k in model.config.text.learned}
    model.config = dataclasses.replace(
        model.config, reader=ReaderConfig(looks={k: list(s.prompts) for k, s in STYLES.items()} | taught))
    model.reader, losses = train_reader(model.config.reader, steps, batch, lr, seed,
                                        read_avoided(avoid), progress)
    report = {"source": str(checkpoint), "steps": steps, "batch": batch, "lr": lr, "seed": seed,
              "avoided": [str(a) for a in avoid or []],
              "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 5),
              "seconds": round(time.time() - t0, 1)}
    extra = {k: v for k, v in model.checkpoint_config.items() if k not in ("lsd_version", "model")}
    model.save(Path(out) / "model", extra | {"prompts": report}, dtype=stored)
    return {"model": str(Path(out) / "model"), **report}
