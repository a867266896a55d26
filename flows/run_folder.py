"""The run folder: the one place that knows where a run's files go and what they are called.

    <root>/.staging/<run_id>/      everything of a run while it is being made
    <root>/<run_id>/               a published run (one rename from staging)
    <root>/quarantine/<run_id>/    a run the gate rejected
    <root>/unsent/<run_id>/        a published run the object store refused, kept locally
    <root>/.checkpoints/<key>/     training state of unfinished fits, kept across runs

`<root>` is `<output.dir>/<name>`, or for a URL output.dir `<output.local_dir>/<name>`
(published runs are then uploaded to `<output.dir>/<name>/<run_id>/`). Folders are created
owner-only: a run holds a model trained on real data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from generators.data.remote import filesystem, is_remote, join_url, local_path
from generators.errors import DataError

SYNTHETIC_FILE = "synthetic.parquet"
# sample.shard_rows: synthetic/part-NNNNN.parquet and _manifest.json (readers skip _ files)
SHARDS_DIR = "synthetic"
MANIFEST_FILE = "_manifest.json"
AUGMENTED_FILE = "augmented.parquet"  # augment.merge: real training rows + synthetic rows
STAGING_DIR = ".staging"
QUARANTINE_DIR = "quarantine"
# A run the gate published but the object store refused: kept locally, never lost.
UNSENT_DIR = "unsent"
CHECKPOINTS_DIR = ".checkpoints"  # training state of unfinished fits, kept across runs
GENERATOR_DIR = "generator"
TOPICS_FILE = "topics.csv"  # in generator/: a topic model's top words
CONFIG_FILE = "config.yaml"
SCHEMA_FILE = "schema.json"
REPORT_FILE = "report.md"
PREVIEW_FILE = "preview.csv"
SAMPLES_FILE = "samples.txt"  # text runs: the first synthetic documents, for reading
EXPECTATIONS_DIR = "expectations"  # suite.json, validation_result.json, data_docs.html
SUITE_FILE = "suite.json"
PLOTS_DIR = "plots"
# The release certificate and its JSON twin (validation/certificate.py), at the run's root;
# in MLflow under certificate/.
CERTIFICATE_HTML = "certificate.html"
CERTIFICATE_JSON = "certificate.json"
CERTIFICATE_DIR = "certificate"
EPOCHS_DIR = "epochs"  # in plots/: image generators' sample grids of every few epochs
PRIVATE_DIR_MODE = 0o700


@dataclass
class RunFolder:
    """The folders of one run; `open(run_id)` creates its staging folder."""

    root: Path  # local: staging, checkpoints, quarantine, unsent, published (local output.dir)
    remote_root: str | None = None  # a URL output.dir's `<dir>/<name>`, else None
    run_id: str = ""

    @classmethod
    def for_config(cls, config) -> RunFolder:
        """The run folder of `config`; a URL output.dir whose package is missing fails here."""
        return cls(*run_roots(config))

    def open(self, run_id: str) -> None:
        self.run_id = run_id
        make_private_dirs(self.staging)

    @property
    def staging(self) -> Path:
        return self.root / STAGING_DIR / self.run_id

    @property
    def generator(self) -> Path:
        return self.staging / GENERATOR_DIR

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def plots(self) -> Path:
        return self.staging / PLOTS_DIR

    @property
    def expectations(self) -> Path:
        return self.staging / EXPECTATIONS_DIR

    @property
    def shards(self) -> Path:
        return self.staging / SHARDS_DIR

    @property
    def unsent(self) -> Path:
        return self.root / UNSENT_DIR / self.run_id

    def final(self, published: bool) -> Path:
        """Where the staged run moves: the run root when published, else quarantine/."""
        return self.root / self.run_id if published else self.root / QUARANTINE_DIR / self.run_id

    def url(self, published: bool) -> str | None:
        """A URL output.dir receives published runs only; a quarantined one stays local."""
        return join_url(self.remote_root, self.run_id) if self.remote_root and published else None

    def output(self, published: bool, sharded: bool) -> str:
        """The synthetic data's final address: a file, or the folder of a sharded sample."""
        name = SHARDS_DIR if sharded else SYNTHETIC_FILE
        url = self.url(published)
        return join_url(url, name) if url else str(self.final(published) / name)

    def relative(self, path: Path) -> str:
        """`path` relative to the run folder, as reports cite their plots."""
        return str(path.relative_to(self.staging))

    def write_config(self, config) -> None:
        (self.staging / CONFIG_FILE).write_text(
            yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
        )

    def discard(self) -> None:
        """Delete a failed run's staging folder, and its parents if that leaves them empty."""
        remove_staging(self.staging)


def run_roots(config) -> tuple[Path, str | None]:
    """The local run root (`<output.dir>/<name>`: staging, checkpoints, quarantine), and
    for a URL output.dir the URL under which published runs are uploaded, else None."""
    if not is_remote(config.output.dir):
        return (Path(local_path(config.output.dir)) / config.name).resolve(), None
    filesystem(config.output.dir, "output.dir")  # a missing package fails now, before training
    local = config.output.local_dir or _default_local_dir()
    return (Path(local).expanduser() / config.name).resolve(), join_url(
        config.output.dir, config.name
    )


def _default_local_dir() -> Path:
    """`synthpipe-<uid>` in the system's temporary folder, created owner-only. The name is
    predictable in a shared /tmp, so a folder someone else made first (to read or plant
    checkpoints trained on real data) is refused, not used."""
    if not hasattr(os, "getuid"):  # no POSIX owners to check
        return Path(tempfile.gettempdir()) / "synthpipe"
    folder = Path(tempfile.gettempdir()) / f"synthpipe-{os.getuid()}"
    try:
        folder.mkdir(mode=PRIVATE_DIR_MODE)
        folder.chmod(PRIVATE_DIR_MODE)
    except FileExistsError:
        pass
    info = folder.lstat()
    if folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise DataError(
            f"output.local_dir: {folder} exists but is not a private folder of this user "
            f"(owner uid {info.st_uid}, mode {oct(info.st_mode & 0o777)}); set "
            "output.local_dir to a folder of your own"
        )
    return folder


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and missing parents as owner-only (0o700): a run holds a model
    trained on real data and its reports. Existing folders keep their modes."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        for created in reversed(missing):
            created.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
            created.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    except OSError as error:
        raise DataError(
            f"output.dir: cannot create {error.filename or created} ({error.strerror or error}); "
            "choose a writable output.dir"
        ) from None


def remove_staging(staging_dir: Path) -> None:
    """Delete a staging folder, and its parents if that leaves them empty."""
    shutil.rmtree(staging_dir, ignore_errors=True)
    for parent in (staging_dir.parent, staging_dir.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
