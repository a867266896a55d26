"""MLflow "models from code" entry: MLflow runs this file to build the pyfunc model.

Logging the model as code (not a cloudpickled object) keeps the logged model readable
and free of pickled code; the generator's own state is loaded from its artifact folder.
"""

import mlflow

from flows.model import SynthesizerModel

mlflow.models.set_model(SynthesizerModel())
