"""Runs the pipeline in this process with LocalDagRunner and an sqlite MLMD store."""
from __future__ import annotations

import os
import time
from typing import Any

from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.pipeline import console, report, runner_duties, summary


def pipeline_ir(pipeline):
    """The compiled pipeline, with the cache off for the nodes that read outside state."""
    from tfx.dsl.compiler import compiler
    ir = compiler.Compiler().compile(pipeline)
    runner_duties.switch_off_cache(ir)
    return ir


def run_local(config: PipelineConfig) -> dict[str, Any]:
    from tfx import v1 as tfx

    from simsiam_tfx.components import source_plan
    from simsiam_tfx.pipeline.pipeline import create_pipeline

    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    start = time.perf_counter()
    span = runner_duties.resolve_data_span(config.data, config.data_root)
    plan, input_base = span.plan, span.folder
    print(f"data: {plan.description}; {plan.num_classes} classes; span {span.number} "
          f"({'new' if span.created else 'unchanged'}): {input_base}/{source_plan.PLAN_FILE}", flush=True)
    pipeline = create_pipeline(
        config, input_base,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    console.expect_components(len(pipeline.components))
    runner_duties.stop_beam_self_packaging()
    tfx.orchestration.LocalDagRunner().run_with_ir(pipeline_ir(pipeline))
    result = {"status": "succeeded", **summary.build(config, plan.description, time.perf_counter() - start)}
    summary.write(result, config.summary_path)
    result["report"] = report.write_report(config.output_dir, config.pipeline_name, result)
    summary.write(result, config.summary_path)
    return result
