"""The composition layer's one JSON write (run records, results.json, benchmark summaries): whole or not
at all, and readable under the user's umask (`world_model.files.atomic_write_bytes`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write_json(path: str | os.PathLike, obj: Any, *, allow_nan: bool = False) -> None:
    """Write ``obj`` as indented JSON to ``path`` (its folder made if missing). ``allow_nan`` lets NaN
    through as JSON's NaN extension (results with unmeasured cells); run records refuse it."""
    from world_model.files import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(obj, indent=1, allow_nan=allow_nan) + "\n").encode())
