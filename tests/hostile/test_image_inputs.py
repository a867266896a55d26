"""Hostile image folders: a symbolic link to a file outside the folder is refused (never
read), and a PNG that declares a huge size is one DataError naming the file, found from
its header before anything is decoded."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from generators.errors import DataError
from generators.image.data import MAX_IMAGE_PIXELS, encode_png, read_images


def _png(path: Path, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 1), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(pixels))
    return path


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG of a few dozen bytes whose header declares width x height."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _folder(tmp_path: Path, images: int = 3) -> Path:
    folder = tmp_path / "images"
    for index in range(images):
        _png(folder / f"{index}.png", seed=index)
    return folder


def test_a_link_to_an_image_outside_the_folder_is_refused_naming_it(tmp_path):
    folder = _folder(tmp_path)
    outside = _png(tmp_path / "elsewhere" / "secret.png", seed=9)  # readable: still refused
    (folder / "evil.png").symlink_to(outside)
    with pytest.raises(DataError) as refused:
        read_images(folder)
    message = str(refused.value)
    assert str(folder / "evil.png") in message and "outside the image folder" in message
    assert len(message.splitlines()) == 1


def test_a_link_in_a_class_subfolder_to_a_system_file_is_refused(tmp_path):
    folder = _folder(tmp_path)
    _png(folder / "cats" / "a.png")
    _png(folder / "dogs" / "b.png")
    outside = tmp_path / "passwd"
    outside.write_text("root:x:0:0:root:/root:/bin/sh\n")
    (folder / "dogs" / "c.png").symlink_to(outside)
    with pytest.raises(DataError, match="c.png: a symbolic link to a file outside"):
        read_images(folder)


def test_links_that_stay_inside_the_folder_and_a_linked_folder_read(tmp_path):
    folder = _folder(tmp_path)
    (folder / "again.png").symlink_to(folder / "0.png")
    assert len(read_images(folder)) == 4
    linked = tmp_path / "linked"
    linked.symlink_to(folder, target_is_directory=True)  # data.path itself may be a link
    assert len(read_images(linked)) == 4


@pytest.mark.parametrize(
    ("width", "height"),
    [(100_000, 100_000), (10_000, 10_000), (MAX_IMAGE_PIXELS + 1, 1)],
    ids=["past Pillow's own limit", "past ours only", "one pixel past"],
)
def test_a_png_declaring_a_huge_size_is_one_line_naming_it(width, height, tmp_path):
    folder = _folder(tmp_path)
    bomb = _png_declaring(folder / "bomb.png", width, height)
    with pytest.raises(DataError) as refused:
        read_images(folder)
    message = str(refused.value)
    assert message.startswith(f"{bomb}: declares") and len(message.splitlines()) == 1
    assert "remove it or resize it" in message


def test_an_image_at_the_pixel_limit_is_not_refused_for_its_size(tmp_path):
    # The limit's own edge: exactly MAX_IMAGE_PIXELS declared is judged by its data (here
    # truncated), not by its size.
    folder = tmp_path / "one"
    folder.mkdir()
    _png_declaring(folder / "edge.png", MAX_IMAGE_PIXELS, 1)
    with pytest.raises(DataError, match="not a readable PNG/JPEG image"):
        read_images(folder)
