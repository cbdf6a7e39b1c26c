"""A curated schema's content, not its path, is what its cache key follows."""
import pytest
from tfx.types import standard_artifacts

from simsiam_tfx.components.curated_schema import CuratedSchemaGen, Executor
from simsiam_tfx.config import ConfigError

SCHEMA = 'feature { name: "image" type: BYTES }\n'


@pytest.mark.fault
def test_a_schema_edited_in_place_changes_the_key_and_a_late_edit_stops_the_run(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text(SCHEMA)
    built = CuratedSchemaGen(str(path))
    assert CuratedSchemaGen(str(path)).exec_properties == built.exec_properties
    path.write_text(SCHEMA + 'feature { name: "label" type: INT }\n')
    assert CuratedSchemaGen(str(path)).exec_properties != built.exec_properties

    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "out")
    with pytest.raises(ConfigError, match="changed after this pipeline was built"):
        Executor().Do({}, {"schema": [schema]}, dict(built.exec_properties))
    Executor().Do({}, {"schema": [schema]}, dict(CuratedSchemaGen(str(path)).exec_properties))
    assert (tmp_path / "out" / "schema.pbtxt").read_text().count("feature") == 2
