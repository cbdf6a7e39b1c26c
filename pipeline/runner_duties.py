"""What every runner does besides running create_pipeline's components. A new runner does all three.

1. Resolve the data span when a run starts (`resolve_data_span`): the run trains on the span folder
   holding the plan of the data as it is now, a new span only when the data changed. So an
   unchanged run hits the cache from ExampleGen through both Trainers, and a schedule (the same
   parameters every run) still trains on new data. LocalDagRunner: before it builds the pipeline
   (local_runner.py). Kubeflow/Vertex: the PlanData step at the start of every run
   (kubeflow/plan_step.py), which kubeflow/compile.py puts before ExampleGen.
2. Switch off the cache of UNCACHED_NODES in the compiled pipeline (`switch_off_cache`):
   PushedBaseline reads the push destination, which changes outside the pipeline's inputs, so a
   cached baseline would compare the candidate with a model no longer served. LocalDagRunner: in
   TFX's IR (local_runner.pipeline_ir). Kubeflow/Vertex: in the PipelineSpec (compile.finish_spec).
3. Stop TFX's Beam self-packaging (`stop_beam_self_packaging`) in every process that runs a Beam
   executor: otherwise TFX 1.21 builds an sdist of its own installation before every Beam
   component, for workers an in-process Beam does not have (seconds each, and a temporary folder
   it never deletes; components/beam_dependencies.py). LocalDagRunner: in its one process.
   Kubeflow/Vertex: in every step's entrypoint (kubeflow/entrypoint.py); remote Beam workers are
   given the pipeline's image at compile time instead (beam_dependencies.with_worker_image).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simsiam_tfx import contract

if TYPE_CHECKING:
    from simsiam_tfx.components.source_plan import Span
    from simsiam_tfx.config import DataConfig

UNCACHED_NODES = (contract.PUSHED_BASELINE,)


def resolve_data_span(data: DataConfig, root: str) -> Span:
    """The span under `root` that holds the plan `data` makes of the data now (written if new)."""
    from simsiam_tfx.components import source_plan
    return source_plan.write_span(source_plan.plan(data, root), root)


def switch_off_cache(compiled: Any) -> None:
    """Turns caching off for UNCACHED_NODES in a compiled pipeline: TFX's IR (LocalDagRunner) or a
    KFP PipelineSpec as a dict (Kubeflow, Vertex)."""
    if isinstance(compiled, dict):
        for name in UNCACHED_NODES:
            compiled["root"]["dag"]["tasks"][name]["cachingOptions"] = {"enableCache": False}
        return
    for node in compiled.nodes:
        if node.pipeline_node.node_info.id in UNCACHED_NODES:
            node.pipeline_node.execution_options.caching_options.enable_cache = False


def stop_beam_self_packaging() -> None:
    """From now on in this process, TFX packages nothing for an in-process Beam. Idempotent."""
    from simsiam_tfx.components import beam_dependencies
    beam_dependencies.skip_staging_for_direct_runner()
