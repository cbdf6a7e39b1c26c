"""Runs the pipeline in this process with LocalDagRunner and an sqlite MLMD store."""
from __future__ import annotations

import os
import time
from typing import Any

from pipeline import summary
from pipeline.config import PipelineConfig


def run_local(config: PipelineConfig) -> dict[str, Any]:
    import trainer  # noqa: F401  (sets the Keras mode before TensorFlow loads)
    from tfx import v1 as tfx

    from components import embedded
    from pipeline.pipeline import create_pipeline

    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    start = time.perf_counter()
    data = embedded.materialize(config.data.dataset, config.data_root, config.data.image_size,
                                config.data.shapes_per_split, config.data.seed)
    pipeline = create_pipeline(
        config, data.input_base, data.num_classes,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    tfx.orchestration.LocalDagRunner().run(pipeline)
    result = summary.build(config, config.data.dataset, time.perf_counter() - start)
    summary.write(result, config.summary_path)
    return result
