"""StopOnAnomalies: fails the run, with a readable message, when ExampleValidator found anomalies.

ExampleValidator only records anomalies; by itself nothing downstream would stop. Transform runs
after this gate (an explicit upstream dependency), so bad data never reaches training.
"""

import os

# No `from __future__ import annotations`: TFX reads these type hints as objects at definition time.
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies

ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's output file in each split's folder


def describe_anomalies(artifact) -> list:
    """One line per anomalous feature of an ExampleAnomalies artifact: "split: feature: short
    description (details)"."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.utils import io_utils
    lines = []
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        found = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(found.anomaly_info.items()):
            details = "; ".join(r.description for r in info.reason if r.description)
            lines.append(f"{split}: {feature}: {info.short_description}" + (f" ({details})" if details else ""))
        if found.HasField("dataset_anomaly_info"):
            lines.append(f"{split}: data set: {found.dataset_anomaly_info.short_description}")
    return lines


class SchemaAnomalies(RuntimeError):
    """The data does not match the schema; the message lists every anomaly, one per line."""


@component
def StopOnAnomalies(anomalies: InputArtifact[ExampleAnomalies]):
    lines = describe_anomalies(anomalies)
    if lines:
        raise SchemaAnomalies("ExampleValidator found schema anomalies; the run stops before Transform:\n  "
                           + "\n  ".join(lines))
