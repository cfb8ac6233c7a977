"""The object store: a local directory and an S3 bucket (moto's server over HTTP)."""

from __future__ import annotations

import uuid

import pytest

from service.core.errors import BadRequest, NotFound
from service.storage import LocalStore, S3Store, open_store, split_object_url


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store((tmp_path / "store").as_uri())
    s3 = request.getfixturevalue("s3")
    return open_store(s3.url(f"unit/{uuid.uuid4().hex[:12]}"))


def test_open_store_picks_the_implementation(tmp_path, s3):
    assert isinstance(open_store(tmp_path.as_uri()), LocalStore)
    remote = open_store(s3.url("a/b"))
    assert isinstance(remote, S3Store)
    assert remote.bucket == "fitfleet-test" and remote.prefix == "a/b"
    with pytest.raises(BadRequest):
        open_store("ftp://example/x")
    with pytest.raises(BadRequest):
        open_store("s3:///no-bucket")


def test_put_get_roundtrip(store, tmp_path):
    src = tmp_path / "src.bin"
    payload = bytes(range(256)) * 100
    src.write_bytes(payload)
    store.put_file("jobs/a/model.keras", src)
    store.put_bytes("jobs/a/state.json", b'{"step": 3}')
    dst = tmp_path / "dst.bin"
    store.get_file("jobs/a/model.keras", dst)
    assert dst.read_bytes() == payload
    assert store.get_bytes("jobs/a/state.json") == b'{"step": 3}'
    assert store.exists("jobs/a/state.json")
    assert not store.exists("jobs/a/missing.json")
    assert store.uri("jobs/a/state.json").endswith("/jobs/a/state.json")


def test_overwrite_replaces_the_object(store):
    store.put_bytes("k/v", b"one")
    store.put_bytes("k/v", b"two")
    assert store.get_bytes("k/v") == b"two"
    assert store.list("k") == ["k/v"]


def test_list_and_delete_prefix(store):
    for key in ("jobs/a/cp/1/m", "jobs/a/cp/1/s", "jobs/a/cp/2/m", "jobs/b/cp/1/m"):
        store.put_bytes(key, key.encode())
    assert store.list("jobs/a") == ["jobs/a/cp/1/m", "jobs/a/cp/1/s", "jobs/a/cp/2/m"]
    assert store.list("jobs/a/cp/1") == ["jobs/a/cp/1/m", "jobs/a/cp/1/s"]
    assert store.list("jobs/none") == []
    assert store.delete_prefix("jobs/a/cp/1") == 2
    assert store.list("jobs/a") == ["jobs/a/cp/2/m"]
    assert store.exists("jobs/b/cp/1/m")
    assert store.delete_prefix("jobs/none") == 0


def test_missing_object_is_not_found(store, tmp_path):
    with pytest.raises(NotFound):
        store.get_bytes("nope/missing.bin")
    with pytest.raises(NotFound):
        store.get_file("nope/missing.bin", tmp_path / "out")


def test_local_store_refuses_keys_that_leave_it(tmp_path):
    store = LocalStore(tmp_path / "store")
    (tmp_path / "secret.txt").write_text("outside")
    for key in ("../secret.txt", "a/../../secret.txt", "jobs/../../secret.txt"):
        with pytest.raises(BadRequest):
            store.get_bytes(key)
        with pytest.raises(BadRequest):
            store.put_bytes(key, b"x")
    assert (tmp_path / "secret.txt").read_text() == "outside"


def test_s3_objects_sit_below_the_prefix(s3):
    prefix = f"unit/{uuid.uuid4().hex[:12]}"
    open_store(s3.url(prefix)).put_bytes("jobs/x/model.keras", b"m")
    keys = [
        o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]
    ]
    assert keys == [f"{prefix}/jobs/x/model.keras"]


def test_presigned_url_names_the_object(s3):
    store = open_store(s3.url("presign"))
    store.put_bytes("m.keras", b"m")
    url = store.presigned_url("m.keras", 60)
    assert url.startswith(s3.endpoint) and "presign/m.keras" in url


def test_split_object_url(tmp_path, s3):
    data = tmp_path / "data" / "digits.npz"
    data.parent.mkdir()
    data.write_bytes(b"npz")
    local, key = split_object_url(data.as_uri())
    assert key == "digits.npz" and local.get_bytes(key) == b"npz"
    open_store(s3.url("datasets")).put_bytes("d.csv", b"a,label\n1,0\n")
    remote, key = split_object_url(f"s3://{s3.bucket}/datasets/d.csv")
    assert key == "datasets/d.csv" and remote.get_bytes(key) == b"a,label\n1,0\n"
    with pytest.raises(BadRequest):
        split_object_url(f"s3://{s3.bucket}")


def test_s3_stores_of_one_process_share_one_client(monkeypatch):
    from service.storage import S3Store

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    a, b = S3Store("bucket-a"), S3Store("bucket-b", "some/prefix")
    assert a.client is b.client
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:10")
    c = S3Store("bucket-a")
    assert c.client is not a.client
    assert c.client.meta.endpoint_url == "http://127.0.0.1:10"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_version_tag_changes_with_the_object_and_names_a_missing_one(kind, tmp_path, request):
    from service.core.errors import NotFound

    if kind == "s3":
        s3 = request.getfixturevalue("s3")
        store = open_store(s3.url(f"tags-{tmp_path.name}"))
    else:
        store = LocalStore(tmp_path / "store")
    store.put_bytes("a/obj", b"one")
    first = store.version_tag("a/obj")
    assert first == store.version_tag("a/obj")
    store.put_bytes("a/obj", b"two, longer")
    assert store.version_tag("a/obj") != first
    with pytest.raises(NotFound, match="does not exist"):
        store.version_tag("a/missing")


def test_big_files_travel_multipart_and_streamed(s3, tmp_path):
    """Above the part size an upload is multipart and a download ranged; neither holds the
    file in memory (traced Python allocations stay below half its size: the parts in
    flight, not the file)."""
    import os
    import tracemalloc

    part = 5 << 20  # S3's smallest part
    size = 7 * part + 12_345
    store = S3Store(s3.bucket, f"big/{uuid.uuid4().hex[:12]}", part_bytes=part)
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    src.write_bytes(os.urandom(size))
    store.put_file("warm", tmp_path / "src.bin")  # the client's own first-use allocations
    tracemalloc.start()
    try:
        store.put_file("ckpt/model.keras", src)
        sent_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        store.get_file("ckpt/model.keras", back)
        got_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    etag = store.version_tag("ckpt/model.keras").strip('"')
    assert etag.endswith("-8"), etag  # a multipart upload of eight parts
    assert back.read_bytes() == src.read_bytes()
    assert sent_peak < size / 2, sent_peak
    assert got_peak < size / 2, got_peak
