"""Shared helpers of the data stage: the error type for bad input files, atomic writes, and a CSV reader that
knows the line number (as a text editor shows it) where every record starts."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(ValueError):
    """An input file is missing or malformed; the message names the file (and the line, where there is one)."""


def temp_path_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty file in the folder of `path`, so that a final `os.replace` is an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    give_usual_permissions(tmp)
    return Path(tmp)


def give_usual_permissions(path: str | os.PathLike) -> None:
    """Read/write for everyone the umask allows (a file renamed from a `mkstemp` file has 0600)."""
    os.chmod(path, 0o666 & ~_UMASK)


@contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path per output; rename them all onto the outputs only if the block succeeds, so no
    half-written output survives an error or an interruption."""
    temps = [temp_path_beside(p) for p in paths]
    try:
        yield temps
        for tmp, final in zip(temps, paths):
            os.replace(tmp, final)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def csv_records(path: str | os.PathLike, required=()) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield `(line, row)` for each data record of a CSV file with a header; `line` is the 1-based line on which
    the record starts, counting the physical lines of quoted multi-line fields. Columns in `required` must be
    in the header."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file (no header line)") from None
        except csv.Error as exc:
            raise DataError(f"{path}, line 1: {exc}") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}, line 1: missing column(s) {', '.join(missing)}")
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(f"{path}, line {start}: malformed CSV record: {exc}") from None
            if fields:
                if len(fields) != len(header):
                    raise DataError(
                        f"{path}, line {start}: {len(fields)} fields where the header has {len(header)}"
                    )
                yield start, dict(zip(header, fields))
            start = reader.line_num + 1



# The project's one set of file writers: each writes through `atomic_outputs`, so an error or a kill never
# leaves a half-written output behind.
def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """JSON of `obj` (with a final newline) at `path`, written atomically."""
    with atomic_outputs(path) as (tmp,), open(tmp, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=indent)
        handle.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """`text` at `path`, written atomically."""
    with atomic_outputs(path) as (tmp,):
        tmp.write_text(text, encoding="utf-8")


def write_csv(path: str | os.PathLike, frame, float_format: str | None = None) -> None:
    """A pandas DataFrame as CSV (no index) at `path`, written atomically."""
    with atomic_outputs(path) as (tmp,):
        frame.to_csv(tmp, index=False, float_format=float_format)


def save_npz(path: str | os.PathLike, arrays) -> None:
    """`np.savez_compressed` of the mapping `arrays` at `path`, written atomically."""
    with atomic_outputs(path) as (tmp,), open(tmp, "wb") as handle:  # a handle: savez would append ".npz"
        np.savez_compressed(handle, **arrays)


def save_torch(path: str | os.PathLike, obj) -> None:
    """`torch.save(obj)` at `path`, written atomically."""
    import torch

    with atomic_outputs(path) as (tmp,):
        torch.save(obj, tmp)


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> None:
    """A matplotlib figure at `path` in the format its suffix names, written atomically."""
    path = Path(path)
    with atomic_outputs(path) as (tmp,):
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip("."))
