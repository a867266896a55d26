"""fsspec URLs for `data.path` and `output.dir`: s3://, gs://, az://, memory://, file://, ...

Reading: the readers stay local-file readers. A URL's file, glob or folder is first copied
into a private temporary folder under the same names (`local_copy`), read from there with
every check a local path gets, and messages name the URL again. A copy rather than
streaming, because the table reader passes over a CSV up to three times (scan, parse, find
the line that broke), which on an object store would be three downloads.

Writing: a run is staged in a local folder as always; a published run is then uploaded
(`upload_folder`), every file first and the `_SUCCESS` marker last, and a failed upload
removes what it wrote. Object stores have no atomic rename of a folder, so the marker is
the promise: a run folder at a URL is complete once it holds `_SUCCESS` (Spark's and
Hadoop's convention; Parquet readers skip names starting with `_` or `.`).

Which protocol needs which package is fsspec's registry (s3fs, gcsfs, adlfs...); none is
a dependency of synthpipe. Credentials come the way each package finds them (environment
variables, config files, instance roles), never from the run config, which is logged.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import known_implementations, registry

from generators.data.secrets import find_credentials, redact
from generators.errors import ConfigError, DataError, SynthpipeError

SUCCESS_MARKER = "_SUCCESS"
# protocol://... or a chained URL such as simplecache::s3://...; a Windows drive (C:\) is
# no URL, and neither is a plain name with a colon.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)(://|::)")
_GLOB_CHARS = "*?["


def is_url(path: str | Path) -> bool:
    """Whether `path` is an fsspec URL (`s3://bucket/key`, `file:///tmp/x`) not a local path."""
    return isinstance(path, str) and _URL.match(path) is not None


def is_remote(path: str | Path) -> bool:
    """Whether `path` is a URL of a filesystem other than this machine's (file:// is not)."""
    match = _URL.match(path) if isinstance(path, str) else None
    local = match is not None and match.group(2) == "://" and match.group(1).lower() == "file"
    return match is not None and not local


def local_path(path: str) -> str:
    """A local path for a local path or a file:// URL: file:///tmp/out -> /tmp/out."""
    return url_to_fs(path)[1] if is_url(path) and not is_remote(path) else path


def check_url(url: str, key: str) -> None:
    """Refuse, without importing anything, a URL whose protocol fsspec does not know, or
    that holds a credential in any form: user info, a token query parameter (the config
    is logged: MLflow params, config.yaml, Prefect's parameters; see data/secrets.py)."""
    for part in url.split("::"):
        match = _URL.match(part)
        protocol = match.group(1).lower() if match else None
        if (
            protocol is not None
            and protocol not in known_implementations
            and protocol not in registry
        ):
            raise ConfigError(
                f"{key}: unknown protocol '{protocol}://' in {redact(url)!r}; give a local path "
                "or an fsspec URL such as s3://bucket/key, gs://…, az://…, file:///path"
            )
        held = credential_in(part) if match else None
        if held:
            raise ConfigError(
                f"{key}: the URL holds {held}, which would be logged; remove it and "
                f"give {protocol}'s credentials the usual way (environment variables or "
                "its config files)"
            )


def credential_in(url: str) -> str | None:
    """ "a password" or what else `url` carries (data/secrets.py), or None."""
    try:
        if urlsplit(url).password:
            return "a password"
    except ValueError:
        pass
    return find_credentials(url)


def filesystem(url: str, key: str):
    """The fsspec filesystem of `url` and the path within it; a one-line error naming `key`
    for an unknown protocol, a missing package or a filesystem that cannot start."""
    check_url(url, key)
    try:
        return url_to_fs(url)
    except ImportError:
        protocol, package = _missing_package(url)
        raise ConfigError(
            f"{key}: {protocol}:// needs the {package} package: pip install {package}"
        ) from None
    except Exception as error:  # a filesystem that cannot start: credentials, a bad bucket
        raise DataError(
            f"{key}: cannot open {url} ({_named(error)}); check the URL and "
            f"{_URL.match(url).group(1).lower()}'s credentials (its environment variables or "
            "config files)"
        ) from error


def _missing_package(url: str) -> tuple[str, str]:
    """(protocol, package) of the first protocol of `url` (each part of a chained URL such
    as simplecache::s3://…) whose package does not import; the registry names the class,
    e.g. s3fs.S3FileSystem, and its package is what to install."""
    for part in url.split("::"):
        match = _URL.match(part)
        if match is None:
            continue
        protocol = match.group(1).lower()
        package = known_implementations.get(protocol, {}).get("class", protocol).split(".")[0]
        try:
            importlib.import_module(package)
        except ImportError:
            return protocol, package
    protocol = _URL.match(url).group(1).lower()
    return protocol, protocol


@dataclass
class LocalCopy:
    """Where a URL's data lies on local disk while it is read."""

    path: str  # the local file, glob or folder standing for the URL
    _local_root: str | None = None
    _url_root: str | None = None

    def named(self, text: str) -> str:
        """`text` with the local copy's paths put back as the URL's."""
        if self._local_root is None or not isinstance(text, str):
            return text
        return text.replace(self._local_root, self._url_root)


@contextmanager
def local_copy(url: str, key: str = "data.path") -> Iterator[LocalCopy]:
    """Copy the file, glob (its matches) or folder (recursively) at `url` into a private
    temporary folder, yield where it lies, and delete it afterwards.

    A `file://` URL is read in place. Errors raised inside the block (`SynthpipeError`s)
    have their messages mapped back from the local copy to the URL.
    """
    fs, path = filesystem(url, key)
    if isinstance(fs, LocalFileSystem):
        yield LocalCopy(path)
        return
    protocol = _URL.match(url).group(1).lower()
    files, fs_root, url_root, rest = _remote_files(fs, path, url, key)
    # mkdtemp's folder is owner-only (0o700): it holds real data.
    folder = Path(tempfile.mkdtemp(prefix="synthpipe-input-")).resolve()
    copy = LocalCopy(str(folder) + rest, str(folder), url_root)
    try:
        targets = []
        for file in files:
            target = (folder / file[len(fs_root) :].lstrip("/")).resolve()
            if not target.is_relative_to(folder):
                raise DataError(f"{key}: {url} holds a file named {file!r} outside its folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            targets.append(str(target))
        try:
            fs.get(files, targets)
        except Exception as error:  # each filesystem raises its own types
            raise _read_error(error, url, key, protocol) from error
        try:
            yield copy
        except SynthpipeError as error:
            error.args = tuple(copy.named(arg) for arg in error.args)
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remote_files(fs, path: str, url: str, key: str) -> tuple[list[str], str, str, str]:
    """The files to copy, the folder they are relative to (in the filesystem's terms and as
    the user's URL spells it), and what follows that folder in the local path."""
    protocol = _URL.match(url).group(1).lower()
    try:
        if any(char in path for char in _GLOB_CHARS):
            cut = path.rfind("/", 0, min(i for i in map(path.find, _GLOB_CHARS) if i >= 0))
            url_cut = url.rfind("/", 0, min(i for i in map(url.find, _GLOB_CHARS) if i >= 0))
            found = fs.glob(path, detail=True)
            files = sorted(name for name, info in found.items() if info["type"] == "file")
            if not files:
                if found:
                    raise DataError(
                        f"{key}: '{url}' matches only folders; give a pattern that matches "
                        "files, such as s3://bucket/dir/*.csv"
                    )
                raise DataError(f"{key}: no file matches '{url}'; check the pattern")
            return files, path[: max(cut, 0)], url[:url_cut], path[max(cut, 0) :]
        info = fs.info(path)
        if info["type"] == "directory":
            files = sorted(fs.find(path))
            if not files:
                raise DataError(f"{key}: the folder {url} holds no files")
            return files, path.rstrip("/"), url.rstrip("/"), ""
        cut = path.rfind("/")
        return [path], path[: max(cut, 0)], url[: url.rfind("/")], path[max(cut, 0) :]
    except DataError:
        raise
    except Exception as error:  # each filesystem raises its own types
        raise _read_error(error, url, key, protocol) from error


def _read_error(error: BaseException, url: str, key: str, protocol: str) -> DataError:
    if isinstance(error, FileNotFoundError):
        return DataError(f"{key}: not found: {url}; check the bucket and the key")
    return DataError(
        f"{key}: cannot read {url} ({_named(error)}); check the URL and {protocol}'s "
        "credentials (its environment variables or config files)"
    )


def upload_folder(
    folder: Path, url: str, key: str = "output.dir", before_marker: Callable[[], None] | None = None
) -> str:
    """Upload every file under `folder` to the URL `url` (a folder there, which must not
    exist yet), call `before_marker()` (e.g. register the run), then write `_SUCCESS` last:
    a JSON list of the files and their sizes.

    On any failure, `before_marker`'s included, what was written at `url` is removed before
    the error is raised, so the URL holds the whole folder with its marker, or nothing.
    Returns `url`.
    """
    fs, path = filesystem(url, key)
    protocol = _URL.match(url).group(1).lower()
    local = sorted(p for p in folder.rglob("*") if p.is_file())
    names = [p.relative_to(folder).as_posix() for p in local]
    if SUCCESS_MARKER in names:
        raise ValueError(f"{folder} already holds {SUCCESS_MARKER}")
    marker = json.dumps(
        {"files": {name: p.stat().st_size for name, p in zip(names, local, strict=True)}},
        indent=1,
    )
    base = path.rstrip("/")
    hint = f"check the URL, the space there and {protocol}'s credentials"
    try:
        exists = fs.exists(base)
    except Exception as error:  # each filesystem raises its own types
        raise DataError(f"{key}: cannot write {url} ({_named(error)}); {hint}") from error
    if exists:
        raise DataError(f"{key}: {url} exists already; a run is never written over another")

    def failed(error: Exception) -> DataError:
        """The one-line error of a failed write, after removing what it left."""
        left = (
            f"nothing was left at {url}"
            if _removed(fs, base)
            else f"the files written there lack {SUCCESS_MARKER}; delete {url}"
        )
        return DataError(f"{key}: cannot write {url} ({_named(error)}); {hint}; {left}")

    try:
        fs.put([str(p) for p in local], [f"{base}/{name}" for name in names])
    except Exception as error:
        raise failed(error) from error
    except BaseException:
        _removed(fs, base)
        raise
    if before_marker is not None:
        try:
            before_marker()
        except BaseException:  # not registered: the files must not stay either
            _removed(fs, base)
            raise
    try:
        fs.pipe_file(f"{base}/{SUCCESS_MARKER}", marker.encode())
    except Exception as error:
        raise failed(error) from error
    except BaseException:
        _removed(fs, base)
        raise
    return url


def _removed(fs, path: str) -> bool:
    """Remove `path` (a folder) if it exists; whether it is gone."""
    try:
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return not fs.exists(path)
    except Exception:  # cleaning up must not hide the failure being reported
        return False


def join_url(url: str, *parts: str) -> str:
    """`url` with path parts appended: join_url("s3://b/runs/", "adult") == "s3://b/runs/adult"."""
    return "/".join([url.rstrip("/"), *parts])


def _named(error: BaseException) -> str:
    """The error's type and the first line of its message: one line whatever it holds."""
    lines = str(error).strip().splitlines()
    detail = redact(" ".join(" ".join(lines[:1]).split())[:300])
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
