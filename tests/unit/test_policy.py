"""Data-location rules: schemes, buckets and prefixes, file roots, addresses, sizes."""

from __future__ import annotations

import os

import pytest

from service.admission.policy import (
    check_data_sizes,
    check_data_url,
    check_size,
    check_spec_locations,
    items,
)
from service.core.config import Settings
from service.core.errors import InvalidSpec


def settings(tmp_path, **overrides) -> Settings:
    values = {"home": str(tmp_path), "storage_url": "s3://store-bucket/runs", **overrides}
    return Settings.from_env({}, **values)


def refused(url: str, s: Settings) -> dict:
    with pytest.raises(InvalidSpec) as info:
        check_data_url(url, "data.train", s)
    assert info.value.status == 422 and info.value.message.startswith("data.train: ")
    return info.value.details


def test_default_file_roots_are_home_and_the_examples_folder(tmp_path):
    s = Settings.from_env({"FITFLEET_HOME": str(tmp_path)})
    roots = items(s.data_file_roots)
    assert roots[0] == str(tmp_path)
    assert any(r.endswith("examples") for r in roots)
    check_data_url(f"file://{roots[-1]}/digits.npz", "data.train", s)


def test_allowed_locations_pass(tmp_path):
    s = settings(tmp_path)
    check_data_url((tmp_path / "sub" / "d.npz").as_uri(), "data.train", s)
    check_data_url("s3://store-bucket/data/d.npz", "data.train", s)
    check_data_url("s3://store-bucket/uploads/abc.npz", "data.train", s)
    check_data_url(None, "data.validation", s)  # absent: nothing to check
    wide = settings(tmp_path, data_s3_locations="*")
    check_data_url("s3://any-bucket/x.npz", "data.train", wide)
    listed = settings(tmp_path, data_s3_locations="datasets, shared/public/")
    check_data_url("s3://datasets/a/b.npz", "data.train", listed)
    check_data_url("s3://shared/public/b.npz", "data.train", listed)


@pytest.mark.parametrize(
    "url,rule",
    [
        ("file:///etc/passwd", "file_root"),
        ("file:///tmp/../etc/passwd", "dot_segments"),
        ("file://host/d.npz", "file_host"),
        ("file:d.npz", "file_path"),
        ("http://169.254.169.254/latest/meta-data", "metadata_address"),
        ("http://metadata.google.internal/", "metadata_address"),
        ("http://[fd00:ec2::254]/", "metadata_address"),
        ("http://0xa9fea9fe/", "metadata_address"),
        ("s3://127.0.0.1/x.npz", "private_address"),
        ("s3://127.1/x.npz", "private_address"),
        ("http://[::1]:9000/x", "private_address"),
        ("http://[::ffff:10.0.0.1]/x", "private_address"),
        ("s3://192.168.1.10/x.npz", "private_address"),
        ("s3://172.16.0.1/x.npz", "private_address"),
        ("s3://minio.internal/x.npz", "private_address"),
        ("https://example.com/d.npz", "scheme"),
        ("gs://bucket/d.npz", "scheme"),
        ("s3://other-bucket/d.npz", "s3_location"),
        ("s3://store-bucket/runs/projects/p/jobs/j/model.keras", "job_store"),
        ("s3://store-bucket/a/../runs/x", "dot_segments"),
        ("s3://key:secret@store-bucket/d.npz", "credentials"),
    ],
)
def test_refusals_name_their_rule(tmp_path, url, rule):
    details = refused(url, settings(tmp_path))
    assert details == {"field": "data.train", "rule": rule}


def test_credentials_are_never_echoed(tmp_path):
    with pytest.raises(InvalidSpec) as info:
        check_data_url("s3://AKIA123:sup3rsecret@store-bucket/d", "data.train", settings(tmp_path))
    assert "sup3rsecret" not in info.value.message and "AKIA123" not in info.value.message


def test_symlinks_cannot_leave_the_roots(tmp_path):
    os.symlink("/etc", tmp_path / "out")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "inside")
    s = settings(tmp_path)
    assert refused((tmp_path / "out" / "passwd").as_uri(), s)["rule"] == "symlink_escape"
    check_data_url((tmp_path / "inside" / "d.npz").as_uri(), "data.train", s)


def test_a_local_job_store_is_not_data(tmp_path):
    s = settings(tmp_path, storage_url=(tmp_path / "store").as_uri())
    url = (tmp_path / "store" / "projects" / "p" / "jobs" / "j" / "state.npz").as_uri()
    assert refused(url, s)["rule"] == "job_store"
    check_data_url((tmp_path / "store" / "uploads" / "u.npz").as_uri(), "data.train", s)


def test_schemes_come_from_the_settings(tmp_path):
    only_s3 = settings(tmp_path, data_schemes="s3")
    details = refused((tmp_path / "d.npz").as_uri(), only_s3)
    assert details["rule"] == "scheme"
    check_data_url("s3://store-bucket/d.npz", "data.train", only_s3)


def test_size_limit_names_the_setting(tmp_path):
    s = settings(tmp_path, max_data_bytes=1000)
    check_size(1000, "data.train", s)
    check_size(None, "data.train", s)
    with pytest.raises(InvalidSpec) as info:
        check_size(1001, "data.validation", s)
    assert "FITFLEET_MAX_DATA_BYTES" in info.value.message
    assert info.value.details["limit"] == 1000


def test_a_spec_is_checked_as_sent(tmp_path):
    s = settings(tmp_path)
    check_spec_locations(["not", "a", "spec"], s)  # the spec check explains that one
    check_spec_locations({"data": {"train": 3}}, s)
    with pytest.raises(InvalidSpec) as info:
        check_spec_locations(
            {"data": {"train": (tmp_path / "d.npz").as_uri(), "validation": "file:///etc/shadow"}},
            s,
        )
    assert info.value.details["field"] == "data.validation"


def test_data_sizes_are_checked_where_they_can_be_read(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"x" * 2000)
    s = settings(tmp_path, max_data_bytes=1000)
    spec = {"data": {"train": (tmp_path / "absent.npz").as_uri(), "validation": None}}
    check_data_sizes(spec, s)  # cannot be read here: left to the worker's own check
    spec["data"]["validation"] = (tmp_path / "d.npz").as_uri()
    with pytest.raises(InvalidSpec) as info:
        check_data_sizes(spec, s)
    assert info.value.details["field"] == "data.validation"
