"""Images through the real `synthesize` flow, on the shipped 8x8 digits (data/digits).

The `copy` baseline returns training images: the privacy gate must quarantine it, with the
reasons, and publish nothing. Image generators that learn run in
tests/flows/test_image_generators_flow.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flows.config import load_config
from flows.synthesize import QUARANTINE_DIR, synthesize
from generators.errors import ConfigError
from tests.conftest import REPO

DIGITS = REPO / "data" / "digits" / "digits.npz"


def write_image_config(folder: Path, generator: dict, **sections) -> Path:
    config = {
        "name": "digits",
        "seed": 0,
        "data": {"path": str(DIGITS), "modality": "image"},
        "generator": {"device": "cpu", **generator},
        "sample": {"rows": 200, "seed": 1},
        "output": {"dir": str(folder / "outputs")},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "images"},
        **sections,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_copied_images_are_quarantined_with_reasons(tmp_path, prefect_harness):
    config = load_config(write_image_config(tmp_path, {"name": "copy"}))
    state = synthesize(config, return_state=True)
    assert state.is_failed()
    assert "near-duplicate share" in state.message and "exact copy share" in state.message
    run_root = tmp_path / "outputs" / "digits"
    assert not [p for p in run_root.iterdir() if p.name not in (QUARANTINE_DIR, ".staging")]
    (quarantined,) = (run_root / QUARANTINE_DIR).iterdir()
    privacy = json.loads((quarantined / "privacy.json").read_text())
    assert privacy["metrics"]["exact_copy_share"] == 1.0
    # The expectations ran on per-image figures: shapes and PNG validity hold for copies.
    result = json.loads((quarantined / "expectations" / "validation_result.json").read_text())
    checked = {r["expectation_config"]["kwargs"].get("column") for r in result["results"]}
    assert {"pixel_mean", "png_valid", "label"} <= checked
    assert (quarantined / "plots" / "synthetic_grid.png").is_file()
    preview = (quarantined / "preview.csv").read_text().splitlines()[0]
    assert preview.split(",") == ["height", "width", "channels", "label"]


def test_table_only_privacy_settings_are_refused_for_images(tmp_path):
    path = write_image_config(
        tmp_path, {"name": "copy"}, privacy={"similarity_filter_quantile": 0.05}
    )
    with pytest.raises(ConfigError, match="privacy.similarity_filter_quantile: applies to tables"):
        load_config(path)


def test_a_table_generator_name_for_images_says_which_modality_it_has(tmp_path):
    path = write_image_config(tmp_path, {"name": "autoregressive"})
    with pytest.raises(ConfigError, match="'autoregressive' generates table data"):
        load_config(path)


TINY = {
    "gmm": {"pca_components": 5, "mixture_components": 2},
    "conv_vae": {"epochs": 2, "width": 4, "batch_size": 32},
    "dcgan": {"epochs": 2, "width": 4, "batch_size": 32},
    "rbm": {"n_hidden": 16, "epochs": 2, "burn_in": 10},
    "dbn": {"hidden_sizes": [16, 8], "epochs": 2, "burn_in": 10},
    "dbm": {"hidden_sizes": [16, 8], "epochs": 2, "burn_in": 10},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_image_generators_publish_png_tables_with_losses_in_mlflow(name, tmp_path, prefect_harness):
    import mlflow
    import numpy as np
    import pyarrow.parquet as pq

    from generators.image.data import IMAGE_TYPE, frame_to_pixels

    config = load_config(
        write_image_config(
            tmp_path,
            {"name": name, "params": TINY[name]},
            # A 2-epoch model may land either side of the gate; the gate has its own test.
            privacy={"override_gate": True},
            validation={"fidelity": True, "plots": True},
        )
    )
    result = synthesize(config)
    table = pq.read_table(result.output)
    assert table.schema.field("image").type == IMAGE_TYPE
    assert table.schema.names == ["image", "height", "width", "channels", "label"]
    pixels = frame_to_pixels(table.to_pandas())
    assert pixels.shape == (200, 8, 8, 1) and pixels.dtype == np.uint8
    run_dir = Path(result.output).parent
    assert (run_dir / "plots" / "synthetic_grid.png").is_file()
    client = mlflow.MlflowClient(config.tracking.uri)
    metrics = client.get_run(result.mlflow_run_id).data.metrics
    assert "fidelity.frechet_distance" in metrics and "privacy.dcr_share" in metrics
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "plots")}
    assert "plots/synthetic_grid.png" in artifacts
    if name != "gmm":  # EM has no epochs
        assert any(k.startswith("loss.") for k in metrics)
    if name in ("dcgan", "conv_vae"):  # sample grids along training
        epochs = {a.path for a in client.list_artifacts(result.mlflow_run_id, "plots/epochs")}
        assert epochs, "no per-epoch grids logged"


@pytest.mark.shared_data
def test_mnist_idx_files_run_through_the_flow(shared_data, tmp_path, prefect_harness):
    import pyarrow.parquet as pq

    from generators.image.data import frame_to_pixels

    raw = yaml.safe_load(
        write_image_config(
            tmp_path,
            {"name": "gmm", "params": {"pca_components": 10, "mixture_components": 2}},
            privacy={"override_gate": True},
            validation={"fidelity": False, "plots": False},
        ).read_text()
    )
    raw["data"] = {
        "path": str(shared_data / "mnist_t10k"),
        "modality": "image",
        "images": {"max_images": 600},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    result = synthesize(load_config(tmp_path / "config.yaml"))
    frame = pq.read_table(result.output).to_pandas()
    assert frame_to_pixels(frame).shape == (200, 28, 28, 1)
    assert set(frame["label"]) <= {str(d) for d in range(10)}
