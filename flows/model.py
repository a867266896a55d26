"""The trained generator as an MLflow pyfunc model: `predict({rows, seed})` returns samples.

An optional `conditions` column holds a JSON object {column: value}: the rows returned all
have those values (natively where the generator conditions, else by rejection).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec
from mlflow.types import Schema as MlflowSchema

from generators.base import Generator
from generators.errors import DataError, SynthpipeError
from generators.registry import generator_class, load_generator

GENERATOR_ARTIFACT = "generator"
# Set to 1 in a process that loads logged models through MLflow's pyfunc loader (mlflow
# models serve, mlflow.pyfunc.load_model) to let SDV's pickled models load there.
ALLOW_PICKLE_ENV = "SYNTHPIPE_ALLOW_PICKLE"
INPUT_EXAMPLE = pd.DataFrame({"rows": [5], "seed": [0]})
SIGNATURE = ModelSignature(
    inputs=MlflowSchema(
        [
            ColSpec("long", "rows"),
            ColSpec("long", "seed", required=False),
            ColSpec("string", "conditions", required=False),
        ]
    )
)


class SynthesizerModel(mlflow.pyfunc.PythonModel):
    """Wraps a saved synthpipe generator. Input: a one-row frame with `rows` and `seed`."""

    def load_context(self, context) -> None:
        """Safe by default: a generator class that unpickles (SDV's) is refused unless the
        process that loads the model opts in with the environment variable
        SYNTHPIPE_ALLOW_PICKLE=1 (nothing in the model's own folder can)."""
        self.generator = load_generator(
            context.artifacts[GENERATOR_ARTIFACT],
            allow_pickle=os.environ.get(ALLOW_PICKLE_ENV) == "1",
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if len(model_input) != 1 or "rows" not in model_input:
            raise DataError("predict takes a one-row frame with columns rows and (optional) seed")
        rows = int(model_input["rows"].iloc[0])
        seed = int(model_input["seed"].iloc[0]) if "seed" in model_input else 0
        conditions = model_input["conditions"].iloc[0] if "conditions" in model_input else None
        if conditions is None or pd.isna(conditions) or not str(conditions).strip():
            return self.generator.sample(rows, seed=seed)
        try:
            values = json.loads(conditions)
        except json.JSONDecodeError as error:
            raise DataError(f"predict: conditions is not JSON ({error})") from None
        if not isinstance(values, dict) or not values:
            raise DataError('predict: conditions must be a JSON object such as {"income": ">50K"}')
        return self.generator.sample_conditioned(rows, values, seed=seed)


def load_logged_generator(model_uri: str, *, allow_pickle: bool = False) -> Generator:
    """The generator of a logged model (models:/NAME/VERSION, models:/NAME@ALIAS,
    runs:/RUN_ID/generator), read from its files alone.

    MLflow's pyfunc loader would import the code stored beside the model, and the model
    folder's own generator.json would choose the class; here the class comes from the
    model's MLflow run (its `generator.name` and `data.modality` params) and must match the
    folder, and a class that unpickles loads only with `allow_pickle=True`.
    """
    client = mlflow.MlflowClient()
    try:
        expected = _trained_class(client, _run_id_of(client, model_uri))
        with tempfile.TemporaryDirectory(prefix="synthpipe-model-") as folder:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{model_uri.rstrip('/')}/artifacts/{GENERATOR_ARTIFACT}",
                dst_path=folder,
            )
            try:
                return load_generator(Path(local), expected=expected, allow_pickle=allow_pickle)
            except DataError as error:  # name the model, not the temporary copy
                raise DataError(str(error).replace(str(local), model_uri)) from None
    except mlflow.exceptions.MlflowException as error:
        raise SynthpipeError(
            f"{model_uri}: cannot load model ({str(error).splitlines()[0]})"
        ) from None


def _run_id_of(client: mlflow.MlflowClient, model_uri: str) -> str | None:
    """The MLflow run that logged the model at `model_uri`; None for a plain path or URL."""
    if model_uri.startswith("runs:/"):
        return model_uri.removeprefix("runs:/").split("/")[0]
    if not model_uri.startswith("models:/"):
        return None
    name, _, rest = model_uri.removeprefix("models:/").partition("/")
    if "@" in name:
        name, alias = name.split("@", 1)
        return client.get_model_version_by_alias(name, alias).run_id
    version = rest.split("/")[0]
    if not version:
        return None
    if version == "latest":  # MLflow's models:/NAME/latest: the highest version number
        found = client.search_model_versions(f"name = '{name}'")
        if not found:
            return None  # the download names the missing model
        return max(found, key=lambda v: int(v.version)).run_id
    return client.get_model_version(name, version).run_id


def _trained_class(client: mlflow.MlflowClient, run_id: str | None) -> type[Generator] | None:
    """The generator class the run's config trained (None when there is no run to ask)."""
    if run_id is None:
        return None
    params = client.get_run(run_id).data.params
    if "generator.name" not in params:
        return None
    return generator_class(params["generator.name"], params.get("data.modality", "table"))
