"""Golden saved models and golden runs: what a refactor must not change.

`scripts/make_golden.py` writes them once, at a commit whose behaviour is the reference;
`tests/test_golden.py` checks the code of today against them:

- tests/fixtures/saved_models/<modality>/<name>/model/ — a generator folder saved by
  `Generator.save` after fitting with the contract tests' tiny settings, and
  `sample.parquet` — what `sample(SAMPLE_ROWS, seed=SAMPLE_SEED)` returned. Today's code
  must load the folder and draw the same frame.
- tests/fixtures/golden_runs/<modality>.json — one real `synthesize` run per modality on
  data that ships in the repo: the config's digest (with its machine-dependent paths set to
  fixed ones), the run folder's files, the output's Parquet metadata keys, the MLflow
  metrics, tag keys and artifact paths.

Only the public `generators.registry` API and the flow are used here, so the module
paths behind them may move.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SAVED_MODELS = FIXTURES / "saved_models"
GOLDEN_RUNS = FIXTURES / "golden_runs"
SENSORS_CSV = GOLDEN_RUNS / "sensors.csv"
FIT_SEED = 3
SAMPLE_ROWS = 25
SAMPLE_SEED = 11
# SDV's pickles are tens to hundreds of kB each; keeping them pins SDV's own format too,
# which is what a user's saved model holds.
SKIPPED: dict[tuple[str, str], str] = {}


def model_cases() -> list[tuple[str, str]]:
    """Every registered (modality, name)."""
    from generators.registry import (
        IMAGE_GENERATORS,
        SEQUENCE_GENERATORS,
        TABLE_GENERATORS,
        TEXT_GENERATORS,
    )

    registries = {
        "table": TABLE_GENERATORS,
        "image": IMAGE_GENERATORS,
        "text": TEXT_GENERATORS,
        "sequence": SEQUENCE_GENERATORS,
    }
    return [(modality, name) for modality, names in registries.items() for name in sorted(names)]


def parquet_roundtrip(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as it reads back from Parquet: the form the golden samples are kept in."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    buffer.seek(0)
    return pd.read_parquet(buffer)


def build_saved_models(
    root: Path = SAVED_MODELS, only_missing: bool = False
) -> list[tuple[str, str]]:
    """Fit every registered generator with tiny settings, save it and its sample (with
    `only_missing`, only those that have no fixture yet: a newly registered generator)."""
    import torch

    from generators.data.schema import infer_schema
    from generators.image.data import image_schema, images_to_frame
    from generators.registry import TABLE_GENERATORS
    from generators.sequence.data import sequence_schema
    from generators.text.data import read_text
    from tests.generators.conftest import make_mixed_frame
    from tests.generators.test_contract import TINY as TINY_TABLE
    from tests.generators.test_contract_modalities import REGISTRIES, SEQUENCE_SETTINGS
    from tests.generators.test_images import digits
    from tests.generators.test_sequences import make_sequence_frame

    torch.set_num_threads(1)
    table = make_mixed_frame().drop(columns=["customer_id"])
    images = images_to_frame(*digits(200))
    text = read_text(REPO / "data" / "shakespeare" / "coriolanus.txt").head(300)
    sequences = make_sequence_frame(n_entities=6, length=20, seed=1)
    frames = {
        "table": (table, infer_schema(table)),
        "image": (images, image_schema(images)),
        "text": (text, infer_schema(text, {"text": "text"})),
        "sequence": (sequences, sequence_schema(infer_schema(sequences), SEQUENCE_SETTINGS)),
    }
    written = []
    for modality, name in model_cases():
        if (modality, name) in SKIPPED or (only_missing and (root / modality / name).exists()):
            continue
        if modality == "table":
            generator = TABLE_GENERATORS[name](device="cpu", **TINY_TABLE[name][0])
        else:
            registry, tiny = REGISTRIES[modality]
            context = {"sequence": SEQUENCE_SETTINGS} if modality == "sequence" else {}
            generator = registry[name](device="cpu", **context, **tiny[name])
        frame, schema = frames[modality]
        generator.fit(frame, schema, seed=FIT_SEED)
        folder = root / modality / name
        generator.save(folder / "model")
        sample = generator.sample(SAMPLE_ROWS, seed=SAMPLE_SEED)
        sample.to_parquet(folder / "sample.parquet", index=False)
        written.append((modality, name))
    return written


# --------------------------------------------------------------------------- golden runs


def run_configs(folder: Path) -> dict[str, dict[str, Any]]:
    """One tiny run config per modality, on data shipped in the repo (the sensors table
    ships beside the golden figures), writing into `folder`."""
    tracking = {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "golden"}
    output = {"dir": str(folder / "outputs")}
    common = {"seed": 0, "output": output, "tracking": tracking}
    adult = REPO / "data" / "adult" / "adult.data.gz"
    from tests.conftest import ADULT_COLUMNS

    return {
        "table": {
            **common,
            "name": "golden-table",
            "data": {
                "path": str(folder / "adult_slice.csv"),
                "columns": ADULT_COLUMNS,
                "separator": ", ",
                "na_values": ["?"],
                "target": "income",
            },
            "generator": {
                "name": "autoregressive",
                "device": "cpu",
                "params": {"epochs": 3, "batch_size": 100, "width": 16, "n_bins": 10},
            },
            "sample": {"rows": 300, "seed": 7},
            "_source": str(adult),
        },
        "image": {
            **common,
            "name": "golden-image",
            "data": {"path": str(REPO / "data" / "digits" / "digits.npz"), "modality": "image"},
            "generator": {
                "name": "gmm",
                "device": "cpu",
                "params": {"pca_components": 5, "mixture_components": 2},
            },
            "sample": {"rows": 100, "seed": 1},
        },
        "text": {
            **common,
            "name": "golden-text",
            "data": {
                "path": str(REPO / "data" / "shakespeare" / "coriolanus.txt"),
                "modality": "text",
                "text": {"split": "blank_line"},
            },
            "generator": {"name": "hmm", "device": "cpu", "params": {"n_states": 4, "n_iter": 3}},
            "sample": {"rows": 60, "seed": 1},
        },
        "sequence": {
            **common,
            "name": "golden-sequence",
            "data": {
                "path": str(SENSORS_CSV),
                "modality": "sequence",
                "sequence": {"entity_column": "sensor", "order_column": "time"},
            },
            "generator": {"name": "hmm", "device": "cpu", "params": {"n_states": 2, "n_iter": 5}},
            "sample": {"rows": 6, "seed": 1},
        },
    }


ADULT_SLICE_ROWS = 400
# Figures that measure the machine, not the run.
TIMING_SUFFIXES = ("_seconds", "rows_per_second")


def run_golden(modality: str, folder: Path) -> dict[str, Any]:
    """Run the real flow for `modality` in `folder`; return the figures a refactor keeps."""
    import gzip

    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    from flows.config import load_config
    from flows.synthesize import synthesize

    config_dict = run_configs(folder)[modality]
    source = config_dict.pop("_source", None)
    if source is not None:
        with gzip.open(source, "rt") as lines:
            Path(config_dict["data"]["path"]).write_text(
                "".join(next(lines) for _ in range(ADULT_SLICE_ROWS))
            )
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict))
    config = load_config(path)
    state = synthesize(config, return_state=True)
    result = state.result(raise_on_failure=False)
    if not hasattr(result, "output"):  # a quarantined run carries its result in the state
        raise AssertionError(f"golden {modality} run did not finish: {state.message}")
    output = Path(result.output)
    run_dir = output.parent
    client = MlflowClient(tracking_uri=config.tracking.uri)
    run = client.get_run(result.mlflow_run_id)
    metrics = {
        key: value for key, value in run.data.metrics.items() if not key.endswith(TIMING_SUFFIXES)
    }
    fixed = config.model_copy(
        update={
            "data": config.data.model_copy(update={"path": "/golden/data"}),
            "output": config.output.model_copy(update={"dir": "/golden/outputs"}),
            "tracking": config.tracking.model_copy(update={"uri": "sqlite:////golden/mlflow.db"}),
        }
    )
    return {
        "status": result.status,
        "config_hash": fixed.digest(),
        "output_config_hash_is_digest": (
            pq.read_schema(output).metadata[b"synthpipe.config_hash"].decode() == config.digest()
        ),
        "run_files": sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()),
        "parquet_metadata_keys": sorted(k.decode() for k in pq.read_schema(output).metadata),
        "metrics": dict(sorted(metrics.items())),
        "tag_keys": sorted(k for k in run.data.tags if not k.startswith("mlflow.")),
        "artifacts": sorted(_artifact_paths(client, run.info.run_id)),
        "params": sorted(run.data.params),
    }


def _artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    paths = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            paths.extend(_artifact_paths(client, run_id, item.path))
        else:
            paths.append(item.path)
    return paths


def write_golden_runs(root: Path, scratch: Path) -> None:
    """Run every modality once and write its figures to root/<modality>.json."""
    SENSORS_CSV.parent.mkdir(parents=True, exist_ok=True)
    if not SENSORS_CSV.exists():
        from tests.flows.test_sequence_flow import write_sensors

        write_sensors(SENSORS_CSV)
    for modality in ("table", "image", "text", "sequence"):
        folder = scratch / modality
        folder.mkdir(parents=True)
        figures = run_golden(modality, folder)
        (root / f"{modality}.json").write_text(json.dumps(figures, indent=1, sort_keys=True))
