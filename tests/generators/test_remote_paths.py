"""fsspec URLs as data paths (memory://, file://) read like local files; uploads end with
_SUCCESS or leave nothing. fsspec's in-process memory filesystem stands in for S3 and GCS."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from generators.data import remote
from generators.data.remote import SUCCESS_MARKER, is_remote, is_url, local_copy, upload_folder
from generators.data.tables import read_table
from generators.errors import ConfigError, DataError
from generators.image.data import IMAGE_COLUMN, read_images
from generators.text.data import read_text

CSV = "name,age,score,joined\nann,31,1.5,2020-01-02\nbob,,2.25,2021-07-30\ncyd,45,,2019-11-11\n"


def _put(fs, url: str, data: bytes) -> None:
    fs.pipe_file(url, data)


def _same_files(tmp_path: Path, fs, url: str, files: dict[str, bytes]) -> None:
    """Write `files` (name -> bytes) both under tmp_path and under the memory URL."""
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
        _put(fs, f"{url}/{name}", data)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("people.csv", CSV.encode()),
        ("people.csv.gz", gzip.compress(CSV.encode())),
        ("people.jsonl", b'{"a": 1, "b": "x"}\n{"a": 2, "b": null}\n{"a": null, "b": "z"}\n'),
        (
            "people.parquet",
            _parquet_bytes(pd.DataFrame({"a": [1, 2, None], "b": ["x", None, "z"]})),
        ),
    ],
)
def test_tables_read_from_memory_and_file_urls_equal_local_reads(memory, tmp_path, name, data):
    fs, url = memory
    _same_files(tmp_path, fs, url, {name: data})
    local, local_schema = read_table(str(tmp_path / name))
    for path in (f"{url}/{name}", (tmp_path / name).as_uri()):
        frame, schema = read_table(path)
        pd.testing.assert_frame_equal(frame, local)
        assert schema.equals(local_schema)


def test_a_glob_url_reads_its_matches_in_name_order(memory, tmp_path):
    fs, url = memory
    files = {"b.csv": b"x,y\n3,c\n", "a.csv": b"x,y\n1,a\n2,b\n", "notes.txt": b"not data\n"}
    _same_files(tmp_path, fs, url, files)
    frame, _ = read_table(f"{url}/*.csv")
    pd.testing.assert_frame_equal(frame, read_table(str(tmp_path / "*.csv"))[0])
    assert frame["x"].tolist() == [1, 2, 3]


def test_the_local_copy_is_private_and_removed_afterwards(memory, monkeypatch):
    fs, url = memory
    _put(fs, f"{url}/people.csv", CSV.encode())
    made = []
    mkdtemp = remote.tempfile.mkdtemp
    monkeypatch.setattr(
        remote.tempfile, "mkdtemp", lambda **kw: made.append(mkdtemp(**kw)) or made[-1]
    )
    with local_copy(f"{url}/people.csv") as copy:
        assert Path(copy.path).read_text() == CSV
        assert Path(made[0]).stat().st_mode & 0o077 == 0
    assert not Path(made[0]).exists()
    read_table(f"{url}/people.csv")
    assert len(made) == 2 and not Path(made[1]).exists()


def test_errors_name_the_url_not_the_local_copy(memory):
    fs, url = memory
    _put(fs, f"{url}/broken.csv", b"a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError) as error:
        read_table(f"{url}/broken.csv")
    message = str(error.value)
    assert message.startswith(f"{url}/broken.csv: row at line 3 has 3 field(s)")
    assert "synthpipe-input-" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("path", "error", "expected"),
    [
        ("{url}/absent.csv", DataError, "data.path: not found: {url}/absent.csv"),
        ("{url}/*.parquet", DataError, "data.path: no file matches '{url}/*.parquet'"),
        ("nosuch://bucket/a.csv", ConfigError, "data.path: unknown protocol 'nosuch://'"),
        ("https://user:secret@example.org/a.csv", ConfigError, "holds a password"),
    ],
)
def test_url_errors_are_one_line_naming_the_key(memory, path, error, expected):
    _, url = memory
    with pytest.raises(error) as raised:
        read_table(path.format(url=url))
    assert expected.format(url=url) in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_a_protocol_whose_package_is_missing_says_what_to_install():
    with pytest.raises(ConfigError) as error:
        read_table("s3://bucket/data/adult.csv")
    assert str(error.value) == "data.path: s3:// needs the s3fs package: pip install s3fs"
    # In a chained URL, the package missing is the store's, not the cache's (fsspec's own).
    with pytest.raises(ConfigError) as error:
        read_table("simplecache::s3://bucket/data/adult.csv")
    assert str(error.value) == "data.path: s3:// needs the s3fs package: pip install s3fs"


def test_an_unexpected_filesystem_failure_passes_its_message_on_in_one_line(memory, monkeypatch):
    fs, url = memory
    _put(fs, f"{url}/people.csv", CSV.encode())

    class NoCredentialsError(Exception):  # botocore's, for instance: not an OSError
        pass

    def refuse(*args, **kwargs):
        raise NoCredentialsError("Unable to locate credentials\n(more detail)")

    monkeypatch.setattr(type(fs), "get", refuse)
    with pytest.raises(DataError) as error:
        read_table(f"{url}/people.csv")
    assert str(error.value) == (
        f"data.path: cannot read {url}/people.csv (NoCredentialsError: Unable to locate "
        "credentials); check the URL and memory's credentials (its environment variables "
        "or config files)"
    )


def test_text_and_image_folders_read_from_urls(memory, tmp_path):
    fs, url = memory
    _put(fs, f"{url}/docs/one.txt", b"the first document\n")
    _put(fs, f"{url}/docs/two.txt", b"the second document\n")
    text = read_text(f"{url}/docs")
    assert text["text"].tolist() == ["the first document", "the second document"]
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        for index in range(2):
            pixels = rng.integers(0, 255, (4, 5), dtype=np.uint8)
            path = tmp_path / f"{label}{index}.png"
            Image.fromarray(pixels).save(path)
            _put(fs, f"{url}/images/{label}/{index}.png", path.read_bytes())
    images = read_images(f"{url}/images")
    assert images["label"].tolist() == ["cat", "cat", "dog", "dog"]
    assert images[IMAGE_COLUMN].iloc[3]["path"] == f"{url}/images/dog/1.png"
    assert images["height"].tolist() == [4] * 4


def test_url_kinds():
    assert is_url("s3://bucket/key") and is_url("simplecache::s3://bucket/key")
    assert not is_url("data/adult.csv") and not is_url("C:\\data\\adult.csv")
    assert is_remote("gs://bucket/runs") and is_remote("memory://runs")
    assert not is_remote("file:///tmp/runs") and not is_remote("outputs")


# -- upload_folder ---------------------------------------------------------------------------
def _run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    (folder / "synthetic.parquet").write_bytes(b"parquet bytes")
    (folder / "plots" / "age.png").write_bytes(b"png bytes")
    return folder


def test_upload_writes_every_file_then_the_success_marker_last(memory, tmp_path, monkeypatch):
    fs, url = memory
    seen_at_marker = []
    pipe_file = type(fs).pipe_file

    def spy(self, path, value, **kwargs):
        seen_at_marker.extend(sorted(self.find(path.rsplit("/", 1)[0])))
        return pipe_file(self, path, value, **kwargs)

    monkeypatch.setattr(type(fs), "pipe_file", spy)
    target = f"{url}/adult/run1"
    assert upload_folder(_run_folder(tmp_path), target) == target
    base = fs._strip_protocol(target)
    assert seen_at_marker == [f"{base}/plots/age.png", f"{base}/synthetic.parquet"]
    assert fs.cat(f"{target}/synthetic.parquet") == b"parquet bytes"
    assert fs.exists(f"{target}/{SUCCESS_MARKER}")
    with pytest.raises(DataError, match="exists already"):
        upload_folder(_run_folder(tmp_path), target)


def test_a_failed_upload_leaves_nothing_at_the_url(memory, tmp_path, monkeypatch):
    fs, url = memory

    def half_then_fail(self, lpaths, rpaths, **kwargs):
        self.pipe_file(rpaths[0], b"half")
        raise OSError("connection reset")

    monkeypatch.setattr(type(fs), "put", half_then_fail)
    with pytest.raises(DataError) as error:
        upload_folder(_run_folder(tmp_path), f"{url}/adult/run1")
    assert "connection reset" in str(error.value) and "nothing was left" in str(error.value)
    assert isinstance(error.value.__context__, OSError)  # so the flow's task retries it
    assert not fs.exists(f"{url}/adult/run1")


def test_the_run_is_registered_between_its_files_and_its_marker(memory, tmp_path):
    """before_marker (the flow registers the MLflow model there) sees every file and no
    marker; when it fails, nothing stays at the URL, so no registered model can point at
    a half-published run and no published run lacks its model."""
    fs, url = memory
    seen = []

    def register():
        seen.extend(sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{url}/adult/run1")))

    upload_folder(_run_folder(tmp_path), f"{url}/adult/run1", before_marker=register)
    assert seen == ["age.png", "synthetic.parquet"]
    assert fs.exists(f"{url}/adult/run1/{SUCCESS_MARKER}")

    def refused():
        raise RuntimeError("tracking server down")

    with pytest.raises(RuntimeError, match="tracking server down"):
        upload_folder(_run_folder(tmp_path), f"{url}/adult/run2", before_marker=refused)
    assert not fs.exists(f"{url}/adult/run2")


def test_write_parquet_puts_one_whole_object_at_a_url_and_writes_paths_atomically(memory, tmp_path):
    from generators.data.parquet import write_parquet

    fs, url = memory
    table = pa.table({"x": [1, 2, 3], "y": ["a", "b", None]})
    target = f"{url}/samples/x.parquet"
    assert write_parquet(table, target, {"synthpipe.seed": "3"}) == target
    read = pq.read_table(fs.open(target, "rb"))
    assert read.equals(table.replace_schema_metadata(read.schema.metadata))
    assert read.schema.metadata[b"synthpipe.seed"] == b"3"
    assert fs.find(f"{url}/samples") == [fs._strip_protocol(target)]  # no temporary left
    local = tmp_path / "out" / "x.parquet"
    assert write_parquet(table, f"file://{local}") == str(local)
    assert pq.read_table(local).num_rows == 3


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_sample_to_a_store_without_its_package_fails_before_loading_the_model(tmp_path, capsys):
    from flows.cli import EXIT_FAILED, main

    code = main(["sample", "models:/absent/1", "--rows", "5", "--output", "s3://b/x.parquet"])
    assert code == EXIT_FAILED
    assert "--output: s3:// needs the s3fs package" in capsys.readouterr().err
