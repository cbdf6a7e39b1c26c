"""Runs the pipeline in this process with LocalDagRunner and an sqlite MLMD store."""
from __future__ import annotations

import os
import time
from typing import Any

from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.pipeline import summary


def run_local(config: PipelineConfig) -> dict[str, Any]:
    from tfx import v1 as tfx

    from simsiam_tfx.components import sources
    from simsiam_tfx.pipeline.pipeline import create_pipeline

    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    start = time.perf_counter()
    plan = sources.plan(config.data, config.data_root)
    input_base = sources.write_plan(plan, config.data_root)
    print(f"data: {plan.description}; {plan.num_classes} classes; plan {input_base}/{sources.PLAN_FILE}", flush=True)
    pipeline = create_pipeline(
        config, input_base, metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    tfx.orchestration.LocalDagRunner().run(pipeline)
    result = summary.build(config, plan.description, time.perf_counter() - start)
    summary.write(result, config.summary_path)
    return result
