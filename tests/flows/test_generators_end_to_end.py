"""Issue 5's done-when, end to end: each of the project's own tabular generators trains and
samples from a config through the real `synthesize` flow (Prefect's test harness) on slices
of ../shared/data's Adult and NYC taxis, publishes exactly the input's Arrow schema, and
the MLflow pyfunc model it logs returns the rows the saved generator gives for a seed.

Tiny hyperparameters (seconds per run): these check the plumbing, not quality, which is
measured by benchmarks/tabular_quality.py. Expectations, fidelity and plots are switched
off to keep the runs short (tests/flows/test_synthesize.py covers them); the privacy
checks run as they ship.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from flows.config import load_config
from flows.synthesize import synthesize
from generators.data.tables import read_table
from generators.registry import load_generator
from tests.conftest import ADULT_COLUMNS

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

SLICE_ROWS = 600
SAMPLE_ROWS = 200
TINY = {
    "autoregressive": {"epochs": 3, "width": 16, "batch_size": 128},
    "gmm": {"max_components": 4, "max_iter": 20},
    "vae": {"epochs": 3, "batch_size": 128, "latent_dim": 8, "hidden_dims": [32]},
    "rbm": {"epochs": 2, "n_hidden": 16, "burn_in": 20},
    "dbn": {"epochs": 2, "hidden_sizes": [16, 8], "burn_in": 20},
    "dbm": {"epochs": 2, "hidden_sizes": [16, 8], "pretrain_epochs": 1, "burn_in": 20},
    "gan": {
        "epochs": 2,
        "batch_size": 100,
        "embedding_dim": 16,
        "generator_dim": [32],
        "discriminator_dim": [32],
    },
}
# How each slice is read: Adult's raw file has no header, ", " separators and "?" for NA.
READ = {
    "adult": {"columns": ADULT_COLUMNS, "separator": ", ", "na_values": ["?"], "target": "income"},
    "nyc_taxis": {"columns": None, "separator": ",", "na_values": [], "target": None},
}
SOURCES = {"adult": "adult/adult.data.gz", "nyc_taxis": "nyc_taxis/taxis.csv.gz"}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads; on a shared 2-core CPU they spin."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def slices(shared_data, tmp_path_factory) -> dict[str, Path]:
    """The first SLICE_ROWS rows of each shared file (NYC taxis with its header line)."""
    folder = tmp_path_factory.mktemp("slices")
    out = {}
    for name, relative in SOURCES.items():
        source = shared_data / relative
        if not source.is_file():
            pytest.skip(f"{source} is absent")
        header = READ[name]["columns"] is None
        with gzip.open(source, "rt") as lines:
            head = [next(lines) for _ in range(SLICE_ROWS + header)]
        out[name] = folder / f"{name}.csv"
        out[name].write_text("".join(head))
    return out


CASES = [
    pytest.param(
        generator,
        dataset,
        id=f"{generator}-{dataset}",
    )
    for generator in sorted(TINY)
    for dataset in ("adult", "nyc_taxis")
]


@pytest.mark.parametrize(("generator", "dataset"), CASES)
def test_generator_runs_through_the_flow_and_its_pyfunc_reproduces_it(
    generator, dataset, slices, tmp_path, prefect_harness
):
    read = READ[dataset]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "name": f"{dataset.replace('_', '-')}-{generator}",
                "seed": 0,
                "data": {"path": str(slices[dataset]), **read},
                "generator": {"name": generator, "params": TINY[generator], "device": "cpu"},
                "sample": {"rows": SAMPLE_ROWS, "seed": 1},
                "validation": {"expectations": False, "fidelity": False, "plots": False},
                # The gate is tested elsewhere; a 2-epoch model on 480 rows can land either
                # side of it, and a quarantined run has no model to load here.
                "privacy": {"enabled": False},
                "output": {"dir": str(tmp_path / "outputs")},
                "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "e2e"},
            }
        )
    )
    config = load_config(config_path)
    result = synthesize(config)

    assert result.status == "published"
    table = pq.read_table(result.output)
    assert table.num_rows == SAMPLE_ROWS == result.rows
    # Exactly the input's Arrow schema: the same names, order and types.
    _, input_arrow = read_table(
        config.data.path,
        columns=config.data.columns,
        separator=config.data.separator,
        na_values=config.data.na_values,
    )
    assert table.schema.names == input_arrow.names
    assert [str(f.type) for f in table.schema] == [str(f.type) for f in input_arrow]

    # The logged pyfunc model and the saved generator give the same rows for a seed.
    mlflow.set_tracking_uri(config.tracking.uri)
    model = mlflow.pyfunc.load_model(result.model_uri)
    predicted = model.predict(pd.DataFrame({"rows": [50], "seed": [3]}))
    saved = load_generator(Path(result.output).parent / "generator").sample(50, seed=3)
    assert len(predicted) == 50
    pd.testing.assert_frame_equal(predicted.reset_index(drop=True), saved)
