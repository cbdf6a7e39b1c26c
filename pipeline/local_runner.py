"""Runs the pipeline in this process with LocalDagRunner and an sqlite MLMD store."""
from __future__ import annotations

import os
import time
from typing import Any

from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.pipeline import console, report, summary


def pipeline_ir(pipeline):
    """The compiled pipeline, with the cache off for the nodes that read outside state."""
    from tfx.dsl.compiler import compiler

    from simsiam_tfx.pipeline.pipeline import UNCACHED_NODES
    ir = compiler.Compiler().compile(pipeline)
    for node in ir.nodes:
        if node.pipeline_node.node_info.id in UNCACHED_NODES:
            node.pipeline_node.execution_options.caching_options.enable_cache = False
    return ir


def run_local(config: PipelineConfig) -> dict[str, Any]:
    from tfx import v1 as tfx

    from simsiam_tfx.components import beam_dependencies, sources
    from simsiam_tfx.pipeline.pipeline import create_pipeline

    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    start = time.perf_counter()
    plan = sources.plan(config.data, config.data_root)
    # The data version, as a scheduled cluster run resolves it (kubeflow/plan_step.py): a new span
    # only when the data changed, so an unchanged run reuses ExampleGen and the Trainers.
    span = sources.write_span(plan, config.data_root)
    input_base = span.folder
    print(f"data: {plan.description}; {plan.num_classes} classes; span {span.number} "
          f"({'new' if span.created else 'unchanged'}): {input_base}/{sources.PLAN_FILE}", flush=True)
    pipeline = create_pipeline(
        config, input_base,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    console.expect_components(len(pipeline.components))
    beam_dependencies.skip_staging_for_direct_runner()
    tfx.orchestration.LocalDagRunner().run_with_ir(pipeline_ir(pipeline))
    result = {"status": "succeeded", **summary.build(config, plan.description, time.perf_counter() - start)}
    summary.write(result, config.summary_path)
    result["report"] = report.write_report(config.output_dir, config.pipeline_name, result)
    summary.write(result, config.summary_path)
    return result
