"""The image table contract: readers, PNG coding, a sample grid (base: `generators.image.base`).

An image dataset is a table, one row per image, so every stage (split, Parquet, MLflow)
handles it like any other table:

    image     struct{bytes: binary, path: string}  PNG bytes (Hugging Face datasets' `Image`
              convention); `path` is the source file for real images, null for synthetic ones
    height    int64
    width     int64
    channels  int64: 1 (grey) or 3 (RGB)
    label     string, only when the data has labels (class subfolders, IDX label files, an
              NPZ `labels`/`y` array, or a Parquet column)

Readers take a folder of PNG/JPEG files (class subfolders become labels), IDX files as
MNIST ships them (optionally gzipped), NPY/NPZ arrays and Parquet with an image column.
All images of a dataset must share one size and channel count, unless `data.images.size`
/ `data.images.channels` says what to convert them to.

Image generators see a float tensor (N, C, H, W) in [0, 1] and the labels as integer codes;
`ImageGenerator` (`generators.image.base`) does the decoding and encoding around them.
"""

from __future__ import annotations

import gzip
import io
import struct
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from generators.data.remote import is_url, local_copy
from generators.data.schema import Column, Schema
from generators.errors import DataError

IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
SHAPE_COLUMNS = ("height", "width", "channels")
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_IMAGES = 2_000_000  # a guard against pointing the reader at a disk's worth of files
# The most pixels one image may declare (8192 x 8192): checked from the header before any
# decoding, so a small file that declares a huge size (a decompression bomb) never
# allocates it. Pillow's own guard only warns below twice its limit and names no file.
MAX_IMAGE_PIXELS = 8192 * 8192
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ImageSettings(BaseModel):
    """`data.images:` in the run config."""

    model_config = ConfigDict(extra="forbid")

    size: tuple[int, int] | None = Field(
        None, description="resize every image to [height, width]; default: all must match"
    )
    channels: Literal[1, 3] | None = Field(
        None, description="convert to 1 (grey) or 3 (RGB) channels; default: all must match"
    )
    label_column: str = Field("label", description="Parquet/NPZ: the column holding labels")
    image_column: str = Field("image", description="Parquet: the column holding images")
    max_images: int | None = Field(None, gt=0, description="read at most this many (the first)")


# -- PNG coding --------------------------------------------------------------------------
def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of one uint8 image of shape (H, W, C), C = 1 or 3."""
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(data: bytes, where: str) -> np.ndarray:
    """uint8 (H, W, C) pixels of PNG/JPEG bytes; a DataError naming `where` when corrupt."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with Image.open(io.BytesIO(data)) as image:
                _check_declared_size(image.width, image.height, where)
                image.load()
                return _pixels(image)
    except Image.DecompressionBombError:  # Pillow refuses it on open: over twice its limit
        raise DataError(
            f"{where}: declares an image too large to decode safely (over "
            f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels); remove it or resize it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"{where}: not a readable PNG/JPEG image ({error}); remove or replace it"
        ) from None


def _check_declared_size(width: int, height: int, where: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{where}: declares a {width} x {height} image ({width * height:,} pixels), more "
            f"than the {MAX_IMAGE_PIXELS:,} one image may hold; remove it or resize it"
        )


def _pixels(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, C): grey stays 1 channel, anything else (palette, alpha, CMYK) RGB."""
    if image.mode in ("L", "1", "I;16", "I", "F"):
        grey = image if image.mode == "L" else image.convert("L")
        return np.asarray(grey, dtype=np.uint8)[:, :, None]
    if image.mode == "LA":
        return np.asarray(image.convert("L"), dtype=np.uint8)[:, :, None]
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def images_to_frame(
    pixels: np.ndarray, labels: np.ndarray | None = None, paths: list[str | None] | None = None
) -> pd.DataFrame:
    """The image table of uint8 pixels (N, H, W, C); labels become strings."""
    n, height, width, channels = pixels.shape
    paths = paths or [None] * n
    frame = pd.DataFrame(
        {
            IMAGE_COLUMN: [{"bytes": encode_png(pixels[i]), "path": paths[i]} for i in range(n)],
            "height": pd.array(np.full(n, height), dtype="Int64"),
            "width": pd.array(np.full(n, width), dtype="Int64"),
            "channels": pd.array(np.full(n, channels), dtype="Int64"),
        }
    )
    if labels is not None:
        frame[LABEL_COLUMN] = pd.array(np.asarray(labels).astype(str), dtype="string")
    return frame


def frame_to_pixels(frame: pd.DataFrame) -> np.ndarray:
    """uint8 pixels (N, H, W, C) of an image table; every image must have one shape."""
    if IMAGE_COLUMN not in frame.columns:
        raise DataError(f"the table has no '{IMAGE_COLUMN}' column of PNG bytes")
    arrays = []
    for position, cell in enumerate(frame[IMAGE_COLUMN]):
        data, where = _cell_bytes(cell, position)
        arrays.append(decode_image(data, where))
    if not arrays:
        raise DataError("the image table is empty")
    shape = arrays[0].shape
    for position, array in enumerate(arrays):
        if array.shape != shape:
            where = _cell_bytes(frame[IMAGE_COLUMN].iloc[position], position)[1]
            raise DataError(
                f"{where}: image is {_shape_text(array.shape)} but the first is "
                f"{_shape_text(shape)}; all images must share one size"
            )
    return np.stack(arrays)


def _cell_bytes(cell: object, position: int) -> tuple[bytes, str]:
    if isinstance(cell, dict):
        path = cell.get("path")
        data = cell.get("bytes")
        where = path or f"row {position}"
        if data is None and path:
            try:
                data = Path(path).read_bytes()
            except OSError as error:
                raise DataError(f"{path}: cannot read image ({error.strerror})") from None
    else:
        data, where = cell, f"row {position}"
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DataError(f"{where}: image cell holds {type(data).__name__}, not PNG bytes")
    return bytes(data), where


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]}x{shape[2]}"


def image_grid(pixels: np.ndarray, path: Path, columns: int = 10) -> Path:
    """Write up to columns**2 images (N, H, W, C uint8) as one PNG grid with 1-pixel gaps."""
    pixels = pixels[: columns * columns]
    n, height, width, channels = pixels.shape
    rows = -(-n // columns)
    grid = np.full(
        (rows * (height + 1) + 1, columns * (width + 1) + 1, channels), 255, dtype=np.uint8
    )
    for index in range(n):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        grid[top : top + height, left : left + width] = pixels[index]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(grid))
    return path


# -- readers -----------------------------------------------------------------------------
def read_images(path: str | Path, settings: ImageSettings | None = None) -> pd.DataFrame:
    """Read an image dataset into the image table (see the module docstring).

    `path` may be an fsspec URL (s3://bucket/images/): it is read from a local copy, and
    the image column's `path` names the files at the URL.
    """
    settings = settings or ImageSettings()
    if is_url(path):
        with local_copy(str(path)) as copy:
            frame = read_images(copy.path, settings)
        frame[IMAGE_COLUMN] = [
            {**cell, "path": copy.named(cell["path"])} for cell in frame[IMAGE_COLUMN]
        ]
        return frame
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        idx = _entries_inside(path, sorted(p for p in path.iterdir() if _is_idx(p)))
        idx = [p for p in idx if _idx_dims(p) >= 3]
        if idx:
            pixels, labels, paths = _read_idx(idx[0], settings)
        else:
            pixels, labels, paths = _read_folder(path, settings)
    elif _is_idx(path):
        pixels, labels, paths = _read_idx(path, settings)
    elif path.suffix.lower() in (".npy", ".npz"):
        pixels, labels, paths = _read_numpy(path, settings)
    elif path.suffix.lower() in (".parquet", ".pq"):
        pixels, labels, paths = _read_parquet(path, settings)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        pixels, labels, paths = _read_files([path], None, settings)
    else:
        raise DataError(
            f"{path}: not an image dataset; expected a folder of PNG/JPEG files, IDX files, "
            ".npy/.npz or .parquet"
        )
    return images_to_frame(pixels, labels, paths)


def _read_folder(
    folder: Path, settings: ImageSettings
) -> tuple[np.ndarray, np.ndarray | None, list]:
    candidates = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    files = sorted(p for p in _entries_inside(folder, candidates) if p.is_file())
    if not files:
        raise DataError(f"{folder}: holds no .png/.jpg/.jpeg files; point data.path at images")
    files = files[: settings.max_images or MAX_IMAGES]
    # Class subfolders (folder/<label>/<file>) are labels, as torchvision's ImageFolder reads.
    depths = {len(f.relative_to(folder).parts) for f in files}
    labels = [f.relative_to(folder).parts[0] for f in files] if depths == {2} else None
    return _read_files(files, labels, settings)


def _entries_inside(folder: Path, entries) -> list[Path]:
    """`entries` of `folder`, each checked to resolve inside it: a symbolic link to a file
    elsewhere (say /etc/passwd named x.png) is refused, not read and not skipped, since
    skipping would silently change the dataset."""
    root = folder.resolve()
    inside = []
    for entry in entries:
        if not entry.resolve().is_relative_to(root):
            raise DataError(
                f"{entry}: a symbolic link to a file outside the image folder {folder}, "
                "which is never read; copy the file into the folder, or remove the link"
            )
        inside.append(entry)
    return inside


def _read_files(
    files: list[Path], labels: list[str] | None, settings: ImageSettings
) -> tuple[np.ndarray, np.ndarray | None, list]:
    arrays = []
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as error:
            raise DataError(f"{file}: cannot read ({error.strerror})") from None
        arrays.append(_convert(decode_image(data, str(file)), settings, str(file)))
    pixels = _stack(arrays, [str(f) for f in files], settings)
    return pixels, None if labels is None else np.asarray(labels), [str(f) for f in files]


def _convert(pixels: np.ndarray, settings: ImageSettings, where: str) -> np.ndarray:
    """Apply `size` and `channels` to one uint8 (H, W, C) image."""
    if settings.channels is not None and pixels.shape[2] != settings.channels:
        if settings.channels == 3:
            pixels = np.repeat(pixels, 3, axis=2)
        else:  # ITU-R 601 luma, as PIL's convert("L")
            pixels = np.asarray(Image.fromarray(pixels, "RGB").convert("L"))[:, :, None]
    if settings.size is not None and pixels.shape[:2] != tuple(settings.size):
        height, width = settings.size
        mode = "L" if pixels.shape[2] == 1 else "RGB"
        image = Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode)
        resized = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
        pixels = resized[:, :, None] if mode == "L" else resized
    return pixels


def _stack(arrays: list[np.ndarray], names: list[str], settings: ImageSettings) -> np.ndarray:
    shape = arrays[0].shape
    for array, name in zip(arrays, names, strict=True):
        if array.shape[:2] != shape[:2]:
            raise DataError(
                f"{name}: image is {array.shape[0]}x{array.shape[1]} but {names[0]} is "
                f"{shape[0]}x{shape[1]}; set data.images.size: [height, width] to resize all"
            )
        if array.shape[2] != shape[2]:
            raise DataError(
                f"{name}: image has {array.shape[2]} channel(s) but {names[0]} has {shape[2]}; "
                "set data.images.channels: 1 or 3 to convert all"
            )
    return np.stack(arrays)


def _is_idx(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return path.is_file() and ("-idx" in name or name.endswith(".idx"))


def _idx_dims(path: Path) -> int:
    try:
        with _open(path) as handle:
            header = handle.read(4)
    except OSError:
        return 0
    return header[3] if len(header) == 4 else 0


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_idx_array(path: Path) -> np.ndarray:
    """One IDX file (LeCun's MNIST format): magic 0 0 <type> <dims>, big-endian sizes, data."""
    try:
        with _open(path) as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read IDX file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dims = raw[3]
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX data holds {len(raw) - header} bytes but its header promises "
            f"{expected}; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _read_idx(path: Path, settings: ImageSettings) -> tuple[np.ndarray, np.ndarray | None, list]:
    images = _read_idx_array(path)
    if images.ndim not in (3, 4):
        raise DataError(f"{path}: IDX images must have 3 or 4 dimensions, found {images.ndim}")
    labels = None
    # MNIST's naming: t10k-images-idx3-ubyte(.gz) beside t10k-labels-idx1-ubyte(.gz).
    candidates = [c for c in path.parent.iterdir() if _is_idx(c) and c != path]
    for candidate in _entries_inside(path.parent, candidates):
        if _idx_dims(candidate) == 1:
            if candidate.name.split("-")[0] == path.name.split("-")[0]:
                labels = _read_idx_array(candidate)
                if len(labels) != len(images):
                    raise DataError(
                        f"{candidate}: holds {len(labels)} labels for {len(images)} images in "
                        f"{path}"
                    )
                break
    limit = settings.max_images or MAX_IMAGES
    pixels = _as_uint8(images[:limit], path)
    pixels = np.stack([_convert(p, settings, str(path)) for p in pixels])
    return pixels, None if labels is None else labels[:limit], [None] * len(pixels)


def _as_uint8(images: np.ndarray, where: Path) -> np.ndarray:
    """uint8 (N, H, W, C) of (N, H, W) or (N, H, W, C) integers 0-255 or floats in [0, 1]."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise DataError(
            f"{where}: expected images shaped (N, H, W) or (N, H, W, 1|3), found {images.shape}"
        )
    if images.size == 0:
        raise DataError(f"{where}: holds no images")
    if np.issubdtype(images.dtype, np.floating):
        if np.nanmin(images) < 0 or np.nanmax(images) > 1 or np.isnan(images).any():
            raise DataError(f"{where}: float pixels must lie in [0, 1] with no NaN")
        return np.round(images * 255).astype(np.uint8)
    if images.min() < 0 or images.max() > 255:
        raise DataError(f"{where}: integer pixels must lie in 0-255")
    return images.astype(np.uint8)


def _read_numpy(path: Path, settings: ImageSettings) -> tuple[np.ndarray, np.ndarray | None, list]:
    try:
        loaded = np.load(path, allow_pickle=False)  # a pickled array could run code
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = set(loaded.files)
            image_key = next((k for k in ("images", "x", "X", "arr_0") if k in keys), None)
            if image_key is None:
                raise DataError(
                    f"{path}: no image array; name it 'images' or 'x' (found {sorted(keys)})"
                )
            images = loaded[image_key]
            label_key = next(
                (k for k in (settings.label_column, "labels", "y", "Y") if k in keys), None
            )
            labels = loaded[label_key] if label_key else None
    else:
        images = loaded
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
    limit = settings.max_images or MAX_IMAGES
    pixels = _as_uint8(images[:limit], path)
    pixels = np.stack([_convert(p, settings, str(path)) for p in pixels])
    return pixels, None if labels is None else labels[:limit], [None] * len(pixels)


def _read_parquet(
    path: Path, settings: ImageSettings
) -> tuple[np.ndarray, np.ndarray | None, list]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"{path}: cannot read Parquet ({error})") from None
    if settings.image_column not in table.column_names:
        raise DataError(
            f"{path}: no column '{settings.image_column}'; columns are {table.column_names}; "
            "set data.images.image_column"
        )
    limit = settings.max_images or MAX_IMAGES
    cells = table.column(settings.image_column).to_pylist()[:limit]
    arrays, names = [], []
    for position, cell in enumerate(cells):
        data, where = _cell_bytes(cell, position)
        where = f"{path} {where}"
        arrays.append(_convert(decode_image(data, where), settings, where))
        names.append(where)
    if not arrays:
        raise DataError(f"{path}: holds no images")
    labels = None
    if settings.label_column in table.column_names:
        labels = np.asarray(table.column(settings.label_column).to_pylist()[:limit], dtype=object)
    paths = [cell.get("path") if isinstance(cell, dict) else None for cell in cells]
    return _stack(arrays, names, settings), labels, paths


def image_schema(frame: pd.DataFrame) -> Schema:
    """The schema of an image table (image, height, width, channels[, label])."""
    columns = [Column(IMAGE_COLUMN, "image", "object")]
    fields = [pa.field(IMAGE_COLUMN, IMAGE_TYPE)]
    for name in SHAPE_COLUMNS:
        low, high = float(frame[name].min()), float(frame[name].max())
        columns.append(Column(name, "numeric", "Int64", low, high))
        fields.append(pa.field(name, pa.int64()))
    if LABEL_COLUMN in frame.columns:
        present = frame[LABEL_COLUMN].dropna().astype(str)
        columns.append(
            Column(
                LABEL_COLUMN, "categorical", "string", categories=tuple(sorted(present.unique()))
            )
        )
        fields.append(pa.field(LABEL_COLUMN, pa.string()))
    return Schema(tuple(columns), pa.schema(fields))
