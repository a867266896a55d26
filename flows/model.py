"""The trained generator as an MLflow pyfunc model: `predict({rows, seed})` returns samples.

An optional `conditions` column holds a JSON object {column: value}: the rows returned all
have those values (natively where the generator conditions, else by rejection).
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec
from mlflow.types import Schema as MlflowSchema

from generators.errors import DataError
from generators.registry import load_generator

GENERATOR_ARTIFACT = "generator"
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
        self.generator = load_generator(context.artifacts[GENERATOR_ARTIFACT])

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
