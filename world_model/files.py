"""Writing files so that a reader never sees a torn one and a colleague can read them: the one atomic
write of the project (`uva_plan` uses it too). Standard library only, so importing it costs nothing."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a torn one.

    A unique name in the same folder (so the rename is atomic), opened like any file so it gets the
    user's umask permissions (``tempfile.mkstemp`` would make a shared checkpoint private)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
