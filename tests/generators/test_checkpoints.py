"""Training resumes from its last checkpoint: after a crash or a kill, fitting again with the
same data, seed and checkpoint folder continues where it stopped and ends with the model an
uninterrupted run would have built."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import torch

from generators.base import CHECKPOINT_FILE, Generator
from generators.image.data import image_schema, images_to_frame
from generators.registry import IMAGE_GENERATORS, TABLE_GENERATORS
from tests.generators.test_images import digits

RESUMABLE = sorted(name for name, cls in TABLE_GENERATORS.items() if cls.resumable)
TINY = {
    "vae": {
        "epochs": 6,
        "batch_size": 64,
        "hidden_dims": (16,),
        "latent_dim": 4,
        "early_stopping_patience": 0,
    },
    "autoregressive": {
        "epochs": 6,
        "batch_size": 64,
        "width": 16,
        "early_stopping_patience": 0,
    },
}
SEED = 5


class _Crash(Exception):
    pass


def _crash_after(epochs: int, fit, monkeypatch) -> None:
    """Run `fit()` so that it crashes right after saving the checkpoint of `epochs`."""
    original = Generator._save_checkpoint

    def crashing(self, epoch, state):
        original(self, epoch, state)
        if epoch == epochs:
            raise _Crash

    monkeypatch.setattr(Generator, "_save_checkpoint", crashing)
    with pytest.raises(_Crash):
        fit()
    monkeypatch.setattr(Generator, "_save_checkpoint", original)


def _fit(name, frame, schema, checkpoint_dir=None):
    generator = TABLE_GENERATORS[name](device="cpu", **TINY[name])
    return generator.fit(frame, schema, seed=SEED, checkpoint_dir=checkpoint_dir)


def test_every_resumable_generator_has_tiny_settings() -> None:
    assert RESUMABLE and sorted(TINY) == RESUMABLE


@pytest.mark.parametrize("name", RESUMABLE)
def test_a_crashed_fit_resumes_and_matches_an_uninterrupted_one(
    name, model_frame_shared, model_schema, tmp_path, monkeypatch
) -> None:
    uninterrupted = _fit(name, model_frame_shared, model_schema)
    _crash_after(3, lambda: _fit(name, model_frame_shared, model_schema, tmp_path), monkeypatch)

    resumed = _fit(name, model_frame_shared, model_schema, tmp_path)
    assert resumed.resumed_from_ == 3
    assert uninterrupted.resumed_from_ is None
    assert resumed.losses_ == uninterrupted.losses_
    pd.testing.assert_frame_equal(resumed.sample(300, seed=1), uninterrupted.sample(300, seed=1))


IMAGE_RESUMABLE = sorted(name for name, cls in IMAGE_GENERATORS.items() if cls.resumable)
TINY_IMAGE = {
    "dcgan": {"epochs": 4, "width": 4, "batch_size": 32, "snapshot_every": 1},
    "conv_vae": {"epochs": 4, "width": 4, "batch_size": 32, "snapshot_every": 1},
}


def test_every_resumable_image_generator_has_tiny_settings() -> None:
    assert IMAGE_RESUMABLE and sorted(TINY_IMAGE) == IMAGE_RESUMABLE


@pytest.mark.parametrize("name", IMAGE_RESUMABLE)
def test_a_crashed_image_fit_resumes_and_matches_an_uninterrupted_one(
    name, tmp_path, monkeypatch
) -> None:
    frame = images_to_frame(*digits(96))
    schema = image_schema(frame)

    def fit(checkpoint_dir=None):
        generator = IMAGE_GENERATORS[name](device="cpu", **TINY_IMAGE[name])
        return generator.fit(frame, schema, seed=SEED, checkpoint_dir=checkpoint_dir)

    uninterrupted = fit()
    _crash_after(2, lambda: fit(tmp_path), monkeypatch)

    resumed = fit(tmp_path)
    assert resumed.resumed_from_ == 2
    assert resumed.losses_ == uninterrupted.losses_
    # The per-epoch grids survive the crash: epochs 1-2 from the checkpoint, 3-4 after it.
    assert [e for e, _ in resumed.snapshots_] == [e for e, _ in uninterrupted.snapshots_]
    for (_, a), (_, b) in zip(resumed.snapshots_, uninterrupted.snapshots_, strict=True):
        assert (a == b).all()
    pd.testing.assert_frame_equal(resumed.sample(32, seed=1), uninterrupted.sample(32, seed=1))


KILLED_EPOCHS = 20
_KILLED_FIT = textwrap.dedent(
    """
    import sys
    import time
    import torch
    from generators.base import Generator
    from generators.registry import TABLE_GENERATORS
    from tests.generators.test_checkpoints import KILLED_EPOCHS, SEED, TINY, mixed_model_table

    torch.set_num_threads(1)
    save = Generator._save_checkpoint

    def slow_save(self, epoch, state):  # tiny epochs take milliseconds: leave time to kill
        save(self, epoch, state)
        time.sleep(0.5)

    Generator._save_checkpoint = slow_save
    name, folder = sys.argv[1], sys.argv[2]
    frame, schema = mixed_model_table()
    params = {**TINY[name], "epochs": KILLED_EPOCHS}
    generator = TABLE_GENERATORS[name](device="cpu", **params)
    generator.fit(frame, schema, seed=SEED, checkpoint_dir=folder)
    """
)


def mixed_model_table():
    """The generators' mixed fixture table without its id column, and its schema."""
    from generators.data.schema import infer_schema
    from tests.generators.conftest import make_mixed_frame

    frame = make_mixed_frame()
    frame = frame[[c.name for c in infer_schema(frame).columns if c.kind != "id"]]
    return frame, infer_schema(frame)


@pytest.mark.parametrize("name", RESUMABLE)
def test_a_killed_fit_resumes_from_its_last_checkpoint(name, tmp_path) -> None:
    from tests.conftest import REPO

    process = subprocess.Popen([sys.executable, "-c", _KILLED_FIT, name, str(tmp_path)], cwd=REPO)
    checkpoint = tmp_path / CHECKPOINT_FILE
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _epochs_done(checkpoint) >= 2:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    done = _epochs_done(checkpoint)
    assert 2 <= done < KILLED_EPOCHS, "the subprocess was not killed mid-training"

    # The same settings as the killed run: a checkpoint only resumes the fit it came from.
    frame, schema = mixed_model_table()
    params = {**TINY[name], "epochs": KILLED_EPOCHS}
    resumed = TABLE_GENERATORS[name](device="cpu", **params).fit(
        frame, schema, seed=SEED, checkpoint_dir=tmp_path
    )
    fresh = TABLE_GENERATORS[name](device="cpu", **params).fit(frame, schema, seed=SEED)
    assert resumed.resumed_from_ == done
    assert len(resumed.losses_) == KILLED_EPOCHS
    assert resumed.losses_ == fresh.losses_
    pd.testing.assert_frame_equal(resumed.sample(300, seed=2), fresh.sample(300, seed=2))


def _epochs_done(checkpoint) -> int:
    try:
        return int(torch.load(checkpoint, weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0
