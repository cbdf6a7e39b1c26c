"""`simsiam-tfx compile | kfp | vertex` subcommands (Kubeflow Pipelines and Vertex AI): not yet."""
from __future__ import annotations


def register(subparsers) -> None:
    """Adds the Kubeflow/Vertex subcommands to the `simsiam-tfx` parser (none yet)."""
