"""The image table contract: readers, PNG coding, schema and Parquet round trips, bad input."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from generators.data.parquet import write_parquet_atomic
from generators.errors import DataError
from generators.image.data import (
    IMAGE_TYPE,
    ImageSettings,
    decode_image,
    encode_png,
    frame_to_pixels,
    image_grid,
    image_schema,
    images_to_frame,
    read_images,
)


def digits(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (shipped with the package, no download) as uint8."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = np.clip(data.images[:n] * 16, 0, 255).astype(np.uint8)[..., None]
    return pixels, data.target[:n]


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_png_round_trip_is_lossless_for_grey_and_rgb():
    rng = np.random.default_rng(0)
    for channels in (1, 3):
        pixels = rng.integers(0, 256, (5, 7, channels), dtype=np.uint8)
        assert np.array_equal(decode_image(encode_png(pixels), "x"), pixels)


def test_folder_with_class_subfolders_gives_labels(tmp_path):
    pixels, labels = digits(30)
    for i, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        folder = tmp_path / f"class_{label}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(image[:, :, 0], "L").save(folder / f"{i:03d}.png")
    frame = read_images(tmp_path)
    assert len(frame) == 30
    assert set(frame["label"]) == {f"class_{label}" for label in labels}
    assert frame[["height", "width", "channels"]].drop_duplicates().values.tolist() == [[8, 8, 1]]
    # Every image decodes back to the pixels written for its file.
    by_path = {cell["path"]: i for i, cell in enumerate(frame["image"])}
    decoded = frame_to_pixels(frame)
    for path, row in by_path.items():
        index = int(path.rsplit("/", 1)[1][:3])
        assert np.array_equal(decoded[row], pixels[index])


def test_idx_pair_reads_images_and_labels(tmp_path):
    pixels, labels = digits(25)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", pixels[..., 0])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    frame = read_images(tmp_path)
    assert np.array_equal(frame_to_pixels(frame), pixels)
    assert frame["label"].tolist() == [str(v) for v in labels]


def test_truncated_idx_names_the_file(tmp_path):
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(struct.pack(">BBBB3I", 0, 0, 8, 3, 10, 8, 8) + b"\0" * 100)
    with pytest.raises(DataError, match="x-images-idx3-ubyte.*truncated"):
        read_images(path)


def test_npz_and_npy_with_float_pixels(tmp_path):
    pixels, labels = digits(20)
    np.savez(tmp_path / "d.npz", images=pixels[..., 0], labels=labels)
    frame = read_images(tmp_path / "d.npz")
    assert np.array_equal(frame_to_pixels(frame), pixels)
    assert frame["label"].tolist() == [str(v) for v in labels]
    np.save(tmp_path / "d.npy", pixels / 255.0)
    assert np.array_equal(frame_to_pixels(read_images(tmp_path / "d.npy")), pixels)
    np.save(tmp_path / "bad.npy", pixels * 2.0)
    with pytest.raises(DataError, match=r"bad.npy: float pixels must lie in \[0, 1\]"):
        read_images(tmp_path / "bad.npy")


def test_parquet_round_trip_keeps_pixels_labels_and_arrow_types(tmp_path):
    pixels, labels = digits(15)
    frame = images_to_frame(pixels, labels)
    schema = image_schema(frame)
    path = write_parquet_atomic(schema.to_arrow(frame), tmp_path / "images.parquet", {})
    table = pq.read_table(path)
    assert table.schema.field("image").type == IMAGE_TYPE
    back = read_images(path)
    assert np.array_equal(frame_to_pixels(back), pixels)
    assert back["label"].tolist() == frame["label"].tolist()


def test_mixed_sizes_fail_naming_the_file_unless_resized(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / "a.png")
    Image.fromarray(np.zeros((9, 8), np.uint8), "L").save(tmp_path / "b.png")
    with pytest.raises(DataError, match=r"b.png: image is 9x8 .* data.images.size"):
        read_images(tmp_path)
    frame = read_images(tmp_path, ImageSettings(size=(6, 5)))
    assert frame_to_pixels(frame).shape == (2, 6, 5, 1)


def test_mixed_channels_fail_unless_converted(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8), "RGB").save(tmp_path / "b.png")
    with pytest.raises(DataError, match=r"b.png: image has 3 channel.*data.images.channels"):
        read_images(tmp_path)
    frame = read_images(tmp_path, ImageSettings(channels=3))
    assert frame_to_pixels(frame).shape == (2, 4, 4, 3)


def test_corrupt_png_and_empty_folder_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: holds no .png"):
        read_images(tmp_path / "empty")
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="broken.png: not a readable PNG/JPEG"):
        read_images(tmp_path)


def test_image_cells_that_are_not_bytes_are_refused():
    frame = pd.DataFrame({"image": [{"bytes": "text", "path": None}]})
    with pytest.raises(DataError, match="row 0: image cell holds str"):
        frame_to_pixels(frame)


def test_grid_lays_images_out_in_rows(tmp_path):
    pixels, _ = digits(12)
    path = image_grid(pixels, tmp_path / "grid.png", columns=5)
    grid = decode_image(path.read_bytes(), "grid")
    assert grid.shape == (3 * 9 + 1, 5 * 9 + 1, 1)
    assert np.array_equal(grid[1:9, 1:9], pixels[0])
    assert np.array_equal(grid[10:18, 1 + 9 : 9 + 9], pixels[6])


@pytest.mark.shared_data
def test_mnist_t10k_reads_with_labels(shared_data):
    frame = read_images(shared_data / "mnist_t10k", ImageSettings(max_images=500))
    assert len(frame) == 500
    assert frame_to_pixels(frame).shape == (500, 28, 28, 1)
    assert set(frame["label"]) <= {str(d) for d in range(10)}
    assert frame["label"].nunique() == 10
