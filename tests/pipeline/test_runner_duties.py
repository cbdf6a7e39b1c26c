"""Tests of simsiam_tfx.pipeline.runner_duties: what every runner does besides running the components."""
from tfx.proto.orchestration import pipeline_pb2

from simsiam_tfx import contract
from simsiam_tfx.config import DataConfig
from simsiam_tfx.pipeline import runner_duties
from tests import data_factory


def test_the_data_span_is_new_only_when_the_data_changed(tmp_path):
    images, root = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    first = runner_duties.resolve_data_span(DataConfig(images=str(images)), root)
    again = runner_duties.resolve_data_span(DataConfig(images=str(images)), root)
    assert (first.number, first.created) == (1, True) and (again.folder, again.created) == (first.folder, False)
    assert again.plan.description == first.plan.description


def test_the_baseline_lookup_is_uncached_in_both_compiled_forms():
    ir = pipeline_pb2.Pipeline()
    for node_id in (contract.PUSHED_BASELINE, contract.EVALUATOR):
        node = ir.nodes.add().pipeline_node
        node.node_info.id = node_id
        node.execution_options.caching_options.enable_cache = True
    runner_duties.switch_off_cache(ir)
    assert [n.pipeline_node.execution_options.caching_options.enable_cache for n in ir.nodes] == [False, True]

    spec = {"root": {"dag": {"tasks": {contract.PUSHED_BASELINE: {"cachingOptions": {"enableCache": True}},
                                       contract.EVALUATOR: {"cachingOptions": {"enableCache": True}}}}}}
    runner_duties.switch_off_cache(spec)
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks[contract.PUSHED_BASELINE]["cachingOptions"] == {"enableCache": False}
    assert tasks[contract.EVALUATOR]["cachingOptions"] == {"enableCache": True}


def test_beam_self_packaging_is_stopped_once_per_process(monkeypatch):
    from tfx.utils import dependency_utils
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags", dependency_utils.make_beam_dependency_flags)
    runner_duties.stop_beam_self_packaging()
    runner_duties.stop_beam_self_packaging()
    assert dependency_utils.make_beam_dependency_flags(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]
