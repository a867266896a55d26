"""Text through the real `synthesize` flow, on the Shakespeare lines shipped in data/.

Tiny models (seconds): they check the plumbing; the models' quality is tested in
tests/generators and measured by benchmarks/text_models.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from flows.config import load_config
from flows.synthesize import QUARANTINE_DIR, synthesize
from generators.errors import ConfigError
from tests.conftest import REPO

CORPUS = REPO / "data" / "shakespeare" / "coriolanus.txt"
TINY = {
    "hmm": {"n_states": 4, "n_iter": 3},
    "lda": {"n_topics": 2, "max_iter": 2},
    "char_lm": {"hidden": 32, "embed": 8, "context": 16, "max_steps": 20},
}


def write_text_config(folder: Path, generator: dict, **sections) -> Path:
    config = {
        "name": "shakespeare",
        "seed": 0,
        "data": {"path": str(CORPUS), "modality": "text", "text": {"split": "blank_line"}},
        "generator": {"device": "cpu", **generator},
        "sample": {"rows": 60, "seed": 1},
        "validation": {"plots": False},
        "output": {"dir": str(folder / "outputs")},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "text"},
        **sections,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name", sorted(TINY))
def test_text_generators_publish_a_text_table(name, tmp_path, prefect_harness):
    config = load_config(write_text_config(tmp_path, {"name": name, "params": TINY[name]}))
    result = synthesize(config)
    assert result.status == "published", result
    table = pq.read_table(result.output)
    assert table.schema.names == ["text"] and str(table.schema.field("text").type) == "string"
    texts = table.column("text").to_pylist()
    assert len(texts) == 60 and all(isinstance(t, str) for t in texts)
    run_dir = Path(result.output).parent
    fidelity = json.loads((run_dir / "fidelity.json").read_text())["metrics"]
    assert {"js_words", "js_words_holdout", "real_word_share"} <= set(fidelity)
    privacy = json.loads((run_dir / "privacy.json").read_text())["metrics"]
    assert "memorised_share" in privacy and "pii.email" in privacy
    validation = json.loads((run_dir / "expectations" / "validation_result.json").read_text())
    checked = {r["expectation_config"]["kwargs"].get("column") for r in validation["results"]}
    assert {"chars", "words", "oov_share"} <= checked
    assert fidelity["holdout_perplexity"] > 1
    import mlflow

    client = mlflow.MlflowClient(config.tracking.uri)
    logged = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert "samples.txt" in logged
    samples = (run_dir / "samples.txt").read_text().split("\n\n---\n\n")
    assert samples[0] == texts[0]
    if name == "lda":
        assert (run_dir / "generator" / "topics.csv").is_file() and "topics.csv" in logged


def test_copied_documents_are_quarantined(tmp_path, prefect_harness):
    config = load_config(write_text_config(tmp_path, {"name": "copy"}))
    state = synthesize(config, return_state=True)
    assert state.is_failed()
    assert "repeat a training document exactly" in state.message
    quarantined = next((tmp_path / "outputs" / "shakespeare" / QUARANTINE_DIR).iterdir())
    privacy = json.loads((quarantined / "privacy.json").read_text())["metrics"]
    assert privacy["duplicate_share"] == 1.0


def test_pii_in_the_input_is_masked_before_training_when_asked(tmp_path, prefect_harness):
    corpus = tmp_path / "mail.txt"
    lines = [f"write to person{i}@example.com about the {i} plays" for i in range(80)]
    corpus.write_text("\n".join(lines) + "\n")
    raw = yaml.safe_load(
        write_text_config(tmp_path, {"name": "copy"}, privacy={"override_gate": True}).read_text()
    )
    raw["data"] = {"path": str(corpus), "modality": "text"}
    raw["privacy"]["text"] = {"mask_pii_input": True}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    result = synthesize(load_config(tmp_path / "config.yaml"))
    texts = pq.read_table(result.output).column("text").to_pylist()
    # The copy baseline returns training documents verbatim: masked ones.
    assert all("@example.com" not in t and "<EMAIL>" in t for t in texts)


def test_table_settings_are_refused_for_text(tmp_path):
    path = write_text_config(
        tmp_path, {"name": "hmm"}, constraints=[{"kind": "unique", "column": "text"}]
    )
    with pytest.raises(ConfigError, match="constraints: applies to tables only"):
        load_config(path)
