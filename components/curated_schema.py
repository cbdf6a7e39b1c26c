"""CuratedSchemaGen: TFX's ImportSchemaGen whose cache key follows the schema's content.

ImportSchemaGen's only execution property is the schema's path, so a schema edited in place is a
cache hit and the edit is ignored. Here the file's sha256, taken when the pipeline is built, is a
second property: an edit re-runs it (and everything that reads the schema). A file changed after
the pipeline was built (on a cluster: after it was compiled) stops the run with one line instead
of running on a schema the cache key does not describe.
"""
from __future__ import annotations

import hashlib

from tfx import types
from tfx.components.schema_gen.import_schema_gen import executor as import_schema_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from simsiam_tfx.config import ConfigError

SHA256_KEY = "schema_sha256"


def file_sha256(path: str) -> str:
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Spec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {**standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
                  SHA256_KEY: ExecutionParameter(type=str)}


class Executor(import_schema_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        path = exec_properties[standard_component_specs.SCHEMA_FILE_KEY]
        if file_sha256(path) != exec_properties[SHA256_KEY]:
            raise ConfigError(f"schema {path} changed after this pipeline was built; build (or compile) it again "
                              f"so that its cache key describes the schema")
        super().Do(input_dict, output_dict, exec_properties)


class CuratedSchemaGen(base_component.BaseComponent):
    """ImportSchemaGen(schema_file=...) keyed on the file's content."""
    SPEC_CLASS = Spec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, schema_file: str):
        super().__init__(spec=Spec(schema_file=schema_file, schema_sha256=file_sha256(schema_file),
                                   schema=types.Channel(type=standard_artifacts.Schema)))
