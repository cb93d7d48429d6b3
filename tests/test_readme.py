"""The README is a user's page: short, the two commands first, and its links lead somewhere."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    first_block = text.split("```")[1]
    assert first_block.strip().splitlines()[0].startswith("make demo")
    assert first_block.strip().splitlines()[1].startswith("make test")


def test_every_file_the_readme_links_or_shows_is_there():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = set(re.findall(r"\]\(([^)#]+)\)", text))  # [text](path) and ![alt](path)
    assert targets and all((REPO / t).exists() for t in targets), targets
    for config in re.findall(r"configs/[\w.-]+\.yaml", text):
        assert (REPO / config).is_file(), config
