"""SDV's PAR behind the sequence interface: the contract, with 1 epoch on 6 short entities."""

from __future__ import annotations

import pandas as pd
import pytest

from generators.data.schema import infer_schema
from generators.sequence.data import check_sequences, entity_lengths
from generators.sequence.par import PARGenerator
from tests.generators.test_sequences import SETTINGS, make_sequence_frame

# Pieces of at most 16 rows: sampling re-runs the GRU over the prefix at every step.
PAR_SETTINGS = SETTINGS.model_copy(update={"max_length": 16})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_sequence_frame(n_entities=6, length=30, seed=5)


@pytest.fixture(scope="module")
def fitted(frame) -> PARGenerator:
    model = PARGenerator(sequence=PAR_SETTINGS, epochs=2, device="cpu")
    return model.fit(frame, infer_schema(frame), seed=0)


def test_contract(fitted, frame):
    synthetic = fitted.sample(3, seed=1)
    assert list(synthetic.columns) == list(frame.columns)
    assert synthetic.dtypes.astype(str).tolist() == frame.dtypes.astype(str).tolist()
    assert synthetic.sensor.nunique() == 3 and set(synthetic.sensor).isdisjoint(frame.sensor)
    pd.testing.assert_frame_equal(check_sequences(synthetic, PAR_SETTINGS), synthetic)
    assert (synthetic.groupby("sensor").time.diff().dropna() == pd.Timedelta(hours=1)).all()
    assert set(entity_lengths(synthetic, "sensor")) <= set(entity_lengths(frame, "sensor"))
    assert set(synthetic["mode"].dropna()) <= set(frame["mode"].dropna())
    assert len(fitted.losses_) == 2 and all("loss" in epoch for epoch in fitted.losses_)


def test_long_entities_are_sampled_in_pieces(fitted):
    synthetic = fitted.sample(2, seed=3, length=37)  # 16 + 16 + 5 rows each
    assert entity_lengths(synthetic, "sensor").tolist() == [37, 37]
    assert (synthetic.groupby("sensor").time.diff().dropna() == pd.Timedelta(hours=1)).all()


def test_seeded_and_saved(fitted, tmp_path):
    first = fitted.sample(2, seed=7)
    pd.testing.assert_frame_equal(first, fitted.sample(2, seed=7))
    assert not first.temp.equals(fitted.sample(2, seed=8).temp)
    fitted.save(tmp_path / "par")
    assert PARGenerator.unpickles_on_load
    loaded = PARGenerator.load(tmp_path / "par", allow_pickle=True)  # saved by this test
    assert loaded.sequence == fitted.sequence
    pd.testing.assert_frame_equal(loaded.sample(2, seed=7), first)
