"""The model zoo: one folder per head (config.toml + README card), installed as vgfm_bayes.zoo.

This file lives at models/__init__.py in the repository; pyproject maps models/ to the package
vgfm_bayes.zoo so that `--model NAME` works from a checkout and from an installed wheel alike.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from ..infer.config import ConfigError, read_config_file


def zoo_root() -> Path:
    return Path(str(resources.files(__name__)))


def available() -> list[str]:
    root = zoo_root()
    return sorted(p.name for p in root.iterdir() if (p / "config.toml").is_file())


def zoo_config(name: str) -> dict[str, Any]:
    """The config of a zoo head by name, or of a config file / head folder by path."""
    path = Path(name)
    if path.suffix in (".toml", ".json") and path.is_file():
        return read_config_file(path)
    if path.is_dir() and (path / "config.toml").is_file():
        return read_config_file(path / "config.toml")
    if name not in available():
        from ..infer.settings import RESEARCH_HEADS  # heavy imports: on this error only

        hint = (
            f" ({name!r} is a research head outside the zoo: set head = {name!r} and its "
            "options in a --config file)"
            if name in RESEARCH_HEADS
            else ""
        )
        raise ConfigError(f"unknown model {name!r}; the zoo has: {', '.join(available())}{hint}")
    return read_config_file(zoo_root() / name / "config.toml")
