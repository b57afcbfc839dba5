"""Configuration files under layers/ are validated on load; every error names the file and
the entry."""

import pytest

from gisapproval.catalogue import load_catalogue
from gisapproval.config import load_jurisdiction, read_toml
from gisapproval.errors import ConfigurationError
from gisapproval.workflow.stages import load_process


def test_missing_file_and_bad_toml_name_the_file(tmp_path):
    with pytest.raises(ConfigurationError, match="layer catalogue not found") as info:
        read_toml(tmp_path / "nothing.toml", "layer catalogue")
    assert str(tmp_path / "nothing.toml") in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("[layer\nname = 1")
    with pytest.raises(ConfigurationError, match="not valid TOML") as info:
        read_toml(bad, "layer catalogue")
    assert str(bad) in str(info.value)


def test_catalogue_errors_name_the_layer_and_field(tmp_path):
    path = tmp_path / "catalogue.toml"
    path.write_text('[[layer]]\nname = "zoning"\ntitle_zh = "控规"\ntitle_en = "Zoning"\ndepartment = "planning"\n'
                    'kind = "vector"\ncoverage = "jurisdiction"\ngeometry_type = "Polygon"\nfeature_key = "zone"\n'
                    'attributes = { code = "str" }\n')
    with pytest.raises(ConfigurationError, match=r"layer #1 \(zoning\).*feature_key 'zone'"):
        load_catalogue(path)
    path.write_text(path.read_text().replace('feature_key = "zone"', 'feature_key = "code"')
                    .replace('"Polygon"', '"Blob"'))
    with pytest.raises(ConfigurationError, match="geometry_type must be one of"):
        load_catalogue(path)


def test_committed_limit_above_the_legal_limit_is_refused(tmp_path):
    path = tmp_path / "stages.toml"
    path.write_text('[[stage]]\nnumber = 1\ncode = "s1"\nname_zh = "一"\nname_en = "One"\npermit_zh = "证"\n'
                    'permit_en = "Permit"\ntasks = [ { department = "land", legal_limit_days = 10, '
                    'committed_limit_days = 12 } ]\n')
    with pytest.raises(ConfigurationError, match="committed limit 12 exceeds the legal limit 10"):
        load_process(path)


def test_jurisdiction_extent_must_be_ordered(tmp_path, monkeypatch):
    path = tmp_path / "j.toml"
    path.write_text('name = "x"\nsrid = 4547\nextent = [10, 10, 5, 20]\n')
    monkeypatch.delenv("GISAPPROVAL_JURISDICTION_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="min < max"):
        load_jurisdiction(path)
