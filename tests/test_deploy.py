"""deploy/docker-compose.yml: exact image tags, a Milvus of the installed pymilvus' minor version,
ports on 127.0.0.1 only, and Milvus started after its dependencies are healthy."""

import importlib.metadata as md
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "docker-compose.yml"
EXACT_TAG = re.compile(r"v\d+\.\d+\.\d+|RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z")


def test_every_image_is_pinned_and_milvus_matches_pymilvus():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    images = {name: s["image"] for name, s in services.items()}
    assert set(images) == {"etcd", "minio", "standalone"}
    for image in images.values():
        repo, _, tag = image.rpartition(":")
        assert repo and EXACT_TAG.fullmatch(tag), f"{image} is not pinned to an exact version"
    milvus = images["standalone"].rpartition(":")[2].lstrip("v").split(".")[:2]
    assert milvus == md.version("pymilvus").split(".")[:2]  # pymilvus 2.5.x speaks Milvus 2.5


def test_only_milvus_is_published_and_only_on_localhost():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = {name: s.get("ports", []) for name, s in services.items()}
    assert published["etcd"] == [] and published["minio"] == []
    assert sorted(published["standalone"]) == ["127.0.0.1:19530:19530", "127.0.0.1:9091:9091"]
    assert services["standalone"]["depends_on"] == {
        "etcd": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
    }
