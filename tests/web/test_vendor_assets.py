"""Vendoring the npm front-end packages into web/static/vendor (no CDN at run time)."""

from __future__ import annotations

import json

import pytest

from web import vendor_assets
from web.vendor_assets import ASSETS, REPO_ROOT, VendorAssetsError, vendor


@pytest.fixture
def fake_tree(tmp_path):
    node_modules = tmp_path / "node_modules"
    for asset in ASSETS:
        src = node_modules / asset.package / asset.source
        if "." in src.name or src.name in ("LICENSE",):
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_text(f"/* {asset.package} {asset.source} */")
        else:  # a directory of images
            src.mkdir(parents=True, exist_ok=True)
            (src / "layers.png").write_bytes(b"\x89PNG")
    lock = tmp_path / "package-lock.json"
    lock.write_text('{"lockfileVersion": 3}')
    return {"node_modules": node_modules, "vendor_dir": tmp_path / "web" / "static" / "vendor", "lock_file": lock}


def test_copies_the_assets_and_writes_the_stamp(fake_tree):
    assert vendor(**fake_tree) is True
    out = fake_tree["vendor_dir"]
    assert (out / "leaflet" / "leaflet.js").read_text() == "/* leaflet dist/leaflet.js */"
    assert (out / "leaflet" / "images" / "layers.png").exists()
    assert (out / "leaflet-draw" / "leaflet.draw.css").exists()
    assert (out / "echarts" / "echarts.min.js").exists()
    assert (out / ".stamp").read_text().strip() == vendor_assets.lock_digest(fake_tree["lock_file"])


def test_is_idempotent_and_follows_the_lock_file(fake_tree):
    assert vendor(**fake_tree) is True
    assert vendor(**fake_tree) is False  # stamp matches: nothing to do
    fake_tree["lock_file"].write_text('{"lockfileVersion": 3, "changed": true}')
    assert vendor(**fake_tree) is True
    assert vendor(**fake_tree) is False
    (fake_tree["vendor_dir"] / "leaflet" / "leaflet.js").unlink()  # a file went missing
    assert vendor(**fake_tree) is True


def test_missing_node_modules_is_a_clear_error(fake_tree, tmp_path):
    fake_tree["node_modules"] = tmp_path / "nowhere"
    with pytest.raises(VendorAssetsError, match="npm ci"):
        vendor(**fake_tree)
    assert not fake_tree["vendor_dir"].exists()


def test_package_json_pins_exact_versions_and_has_no_scripts():
    package = json.loads((REPO_ROOT / "package.json").read_text())
    assert package["private"] is True
    assert "scripts" not in package
    deps = package["dependencies"]
    assert deps["leaflet"] == "1.9.4"
    assert deps["leaflet-draw"] == "1.0.4"
    assert all(v[0].isdigit() for v in deps.values()), "exact versions only"
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    for name, version in deps.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
