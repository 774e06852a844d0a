"""Files written atomically: nothing appears at the target path unless it is complete."""
from __future__ import annotations

import os
from pathlib import Path

from armcodec.errors import ArmcodecError, OutputExistsError


def write_atomic(path: Path, data: bytes | None = None, writer=None, force: bool = False) -> None:
    """Write to a temporary file in the target directory, then rename: nothing appears at
    ``path`` unless complete.  ``writer(tmp_path)`` writes formats that need a file name."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists (use --force to overwrite)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        if writer is not None:
            writer(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if path.exists() and not force:
            raise OutputExistsError(f"{path} exists (use --force to overwrite)")
        os.replace(tmp, path)
    except OSError as e:
        raise ArmcodecError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
