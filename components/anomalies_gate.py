"""StopOnAnomalies: fails the run, with a readable message, when ExampleValidator found anomalies.

ExampleValidator only records anomalies; by itself nothing downstream would stop. Transform runs
after this gate (an explicit upstream dependency), so bad data never reaches training.
"""

import os

from tfx import v1 as tfx
# No `from __future__ import annotations`: TFX reads these type hints as objects at definition time.
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import ExampleAnomalies
from tfx.types import artifact_utils

ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's output file in each Split-<name> folder


def describe_anomalies(anomalies_uri: str, split_names) -> list:
    """One line per anomalous feature: "split: feature: short description (details)"."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.utils import io_utils
    lines = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(anomalies.anomaly_info.items()):
            details = "; ".join(r.description for r in info.reason if r.description)
            lines.append(f"{split}: {feature}: {info.short_description}" + (f" ({details})" if details else ""))
        if anomalies.HasField("dataset_anomaly_info"):
            lines.append(f"{split}: data set: {anomalies.dataset_anomaly_info.short_description}")
    return lines


class SchemaAnomalies(RuntimeError):
    """The data does not match the schema; the message lists every anomaly, one per line."""


@component
def StopOnAnomalies(anomalies: InputArtifact[ExampleAnomalies]):
    lines = describe_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if lines:
        raise SchemaAnomalies("ExampleValidator found schema anomalies; the run stops before Transform:\n  "
                           + "\n  ".join(lines))
