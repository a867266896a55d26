"""Sequences through the real `synthesize` flow: a seeded multi-entity table made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from flows.config import load_config
from flows.synthesize import synthesize
from generators.errors import ConfigError

ENTITIES, HOURS = 14, 48


def write_sensors(path: Path) -> Path:
    """Hourly readings per sensor: an AR(1) temperature, humidity tied to it, a wind
    direction, about 2% missing."""
    rng = np.random.default_rng(0)
    rows = []
    for sensor in range(ENTITIES):
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(rng.integers(0, 100)))
        temperature = rng.normal(10, 3)
        for hour in range(HOURS):
            temperature = 10 + 0.9 * (temperature - 10) + rng.normal(0, 1)
            rows.append(
                {
                    "sensor": f"s{sensor:02d}",
                    "time": (start + pd.Timedelta(hours=hour)).isoformat(),
                    "temperature": round(temperature, 2) if rng.random() > 0.02 else None,
                    "humidity": round(80 - 2 * temperature + rng.normal(0, 1), 1),
                    "wind": rng.choice(["N", "E", "S", "W"], p=[0.4, 0.3, 0.2, 0.1]),
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_config(folder: Path, generator: dict, **sections) -> Path:
    config = {
        "name": "sensors",
        "seed": 0,
        "data": {
            "path": str(write_sensors(folder / "sensors.csv")),
            "modality": "sequence",
            "sequence": {"entity_column": "sensor", "order_column": "time"},
        },
        "generator": {"device": "cpu", **generator},
        "sample": {"rows": 6, "seed": 1},
        "output": {"dir": str(folder / "outputs")},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "sequences"},
        **sections,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_hmm_publishes_new_entities_in_order(tmp_path, prefect_harness):
    config = load_config(
        write_config(tmp_path, {"name": "hmm", "params": {"n_states": 2, "n_iter": 5}})
    )
    result = synthesize(config)
    assert result.status in ("published", "quarantined")
    table = pq.read_table(result.output)
    frame = table.to_pandas()
    assert list(frame.columns) == ["sensor", "time", "temperature", "humidity", "wind"]
    assert frame["sensor"].nunique() == 6  # sample.rows counts entities
    assert not set(frame["sensor"]) & {f"s{i:02d}" for i in range(ENTITIES)}  # fresh ids
    for _, rows in frame.groupby("sensor"):
        assert rows["time"].is_monotonic_increasing and rows["time"].is_unique
    run_dir = Path(result.output).parent
    assert (run_dir / "plots" / "acf.png").is_file()
    fidelity = json.loads((run_dir / "fidelity.json").read_text())["metrics"]
    assert "acf_distance_mean" in fidelity
    expectations = json.loads((run_dir / "expectations.json").read_text())["metrics"]
    assert any(key.startswith("sequence.") for key in expectations)
    assert (run_dir / "expectations" / "sequence_suite.json").is_file()


@pytest.mark.slow
def test_par_runs_through_the_flow(tmp_path, prefect_harness):
    config = load_config(
        write_config(
            tmp_path,
            {"name": "par", "params": {"epochs": 1}},
            sample={"rows": 3, "seed": 1},
            validation={"expectations": False},
            privacy={"override_gate": True},
        )
    )
    result = synthesize(config)
    frame = pq.read_table(result.output).to_pandas()
    assert frame["sensor"].nunique() == 3
    for _, rows in frame.groupby("sensor"):
        assert rows["time"].is_monotonic_increasing


def test_sequence_settings_are_required(tmp_path):
    raw = yaml.safe_load(write_config(tmp_path, {"name": "hmm"}).read_text())
    del raw["data"]["sequence"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="data.sequence: required"):
        load_config(tmp_path / "config.yaml")
