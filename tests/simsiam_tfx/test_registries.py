"""Tests of simsiam_tfx.registries: each flag offers exactly its table's names, and the code that acts
on a choice knows every one of them."""
import argparse

from simsiam_tfx import registries
from simsiam_tfx.components import preprocessing
from simsiam_tfx.pipeline import cli
from simsiam_tfx.trainer import backbones


def _choices(parser: argparse.ArgumentParser, option: str) -> tuple:
    action = next(a for a in parser._actions if option in a.option_strings)
    return tuple(action.choices)


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def test_run_flags_offer_their_tables():
    run = _subparser("run")
    assert _choices(run, "--augment") == tuple(registries.AUGMENT_POLICIES)
    assert _choices(run, "--backbone") == tuple(registries.BACKBONE_ARCHS)
    assert _choices(run, "--precision") == (*registries.PRECISION_POLICIES, registries.AUTO_PRECISION)


def test_bench_flags_offer_their_tables():
    bench = _subparser("bench")
    assert _choices(bench, "--augment") == tuple(registries.AUGMENT_POLICIES)
    assert _choices(bench, "--backbone") == tuple(registries.BACKBONE_ARCHS)
    assert _choices(bench, "--precision") == tuple(registries.PRECISION_POLICIES)


def test_every_policy_is_a_transform_policy():
    for name, parameters in registries.AUGMENT_POLICIES.items():
        assert {k: getattr(preprocessing.policy_config(name), k) for k in parameters} == parameters


def test_every_backbone_builds():
    for name in registries.BACKBONE_ARCHS:
        assert backbones.build_encoder(name, 32, width=2).output_shape[0] is None


def test_an_added_policy_is_accepted_by_the_configuration(monkeypatch):
    # The configuration and the Transform module read the table itself: a new entry needs no other
    # edit (the flags' choices are the table's keys when the CLI is imported, tested above).
    from simsiam_tfx.config import PipelineConfig
    monkeypatch.setitem(registries.AUGMENT_POLICIES, "test-policy", {"flip": False})
    cfg = PipelineConfig()
    cfg.pretrain.augment = "test-policy"
    assert cfg.validate().augment_policy() == "test-policy"
    assert preprocessing.custom_config(cfg)["augment"]["flip"] is False


def test_dataset_flags_offer_their_tables():
    data_sets = (*registries.EMBEDDED_DATASETS, *registries.TFDS_DATASETS)
    assert _choices(_subparser("run"), "--dataset") == data_sets
    assert _choices(_subparser("run"), "--probe-dataset") == data_sets


def test_every_embedded_data_set_is_made_and_has_a_policy():
    from simsiam_tfx.components import embedded
    assert set(embedded.MAKERS) == set(registries.EMBEDDED_DATASETS)
    assert {recipe["augment"] for recipe in registries.EMBEDDED_DATASETS.values()} <= set(registries.AUGMENT_POLICIES)
    for recipe in registries.EMBEDDED_DATASETS.values():
        assert set(recipe) == {"augment", "view_fraction", "epochs"} and 0 < recipe["view_fraction"] <= 1


def test_every_tfds_data_set_feeds_every_pipeline_split():
    from simsiam_tfx.features import SPLITS
    for name, layout in registries.TFDS_DATASETS.items():
        assert set(layout) == {*SPLITS, "hash_split"}, name
