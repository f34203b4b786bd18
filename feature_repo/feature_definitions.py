"""The Feast objects of every model in ``configs/``, for ``feast apply``.

The declarations live in :mod:`mlplatform.features.definitions` and are built from the same
configs the trainer and the server read, so feature names and types cannot disagree. Feast
collects objects from module attributes, so each one is bound to a module-level name here.
Relative ``data.data_dir`` values resolve against the project root, as the CLI resolves them.
"""

from __future__ import annotations

from pathlib import Path

from mlplatform.features.definitions import definitions, project_configs

ROOT = Path(__file__).resolve().parents[1]

globals().update(
    {f"{type(obj).__name__}_{obj.name}": obj for obj in definitions(project_configs(ROOT))}
)
