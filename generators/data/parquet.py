"""Atomic Parquet writes: a temporary name, then one rename (or one put to a store)."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from generators.data.remote import filesystem, is_remote, local_path
from generators.errors import DataError


def write_parquet_atomic(
    table: pa.Table, path: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write `table` to `path` via a temporary file in the same folder and a rename.

    Readers see either no file or the whole file, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({key.encode(): str(value).encode() for key, value in metadata.items()})
        table = table.replace_schema_metadata(merged)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_parquet(
    table: pa.Table,
    destination: str | Path,
    metadata: dict[str, str] | None = None,
    *,
    key: str = "--output",
) -> str:
    """Write `table` as one Parquet file at a local path, a file:// URL or an fsspec URL
    (s3://bucket/x.parquet): locally by `write_parquet_atomic`; to a store by writing the
    file locally and putting it in one request, so readers see the whole object or none.
    `key` names the setting in errors. Returns where it went."""
    if not is_remote(str(destination)):
        return str(write_parquet_atomic(table, Path(local_path(str(destination))), metadata))
    url = str(destination)
    fs, path = filesystem(url, key)
    with tempfile.TemporaryDirectory(prefix="synthpipe-") as folder:
        local = write_parquet_atomic(table, Path(folder) / "table.parquet", metadata)
        try:
            fs.put_file(str(local), path)
        except Exception as error:  # each store raises its own types
            detail = " ".join(str(error).split())[:200] or type(error).__name__
            raise DataError(f"{key}: cannot write {url} ({detail})") from error
    return url
