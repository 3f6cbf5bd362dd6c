"""The deployment files, checked by what runs without a Docker engine: hadolint and a YAML parse."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "deploy").glob("*.Dockerfile"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_runs_unprivileged(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in {"root", "0"}


def test_compose_services_build_from_our_dockerfiles(compose: dict) -> None:
    services = compose["services"]
    assert {"redis", "gateway-1", "gateway-2", "nginx", "worker-1", "worker-2"} <= set(services)
    for name, service in services.items():
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).is_file(), name


def test_compose_exposes_only_the_load_balancer_on_loopback(compose: dict) -> None:
    published = {
        name: s.get("ports", []) for name, s in compose["services"].items() if s.get("ports")
    }
    assert list(published) == ["nginx"]
    assert all(str(port).startswith("127.0.0.1:") for port in published["nginx"])


def test_compose_workers_each_keep_their_own_profile(compose: dict) -> None:
    services = compose["services"]
    volumes = [services[w]["volumes"][0].split(":")[0] for w in ("worker-1", "worker-2")]
    ids = [services[w]["environment"]["LMB_WORKER_ID"] for w in ("worker-1", "worker-2")]
    assert len(set(volumes)) == 2 and len(set(ids)) == 2
    # The compose file's own Redis, with its password (tests/integration/test_compose_redis.py).
    for w in ("worker-1", "worker-2"):
        environment = services[w]["environment"]
        assert environment["LMB_REDIS_URL"] == "redis://redis:6379/0"
        assert re.fullmatch(r"\$\{LMB_REDIS_PASSWORD:\?[^}]+\}", environment["LMB_REDIS_PASSWORD"])


def test_compose_gateways_open_only_the_workers_screens(compose: dict) -> None:
    services = compose["services"]
    workers = {s["environment"]["LMB_NOVNC_HOST"] for n, s in services.items() if "worker" in n}
    for gateway in ("gateway-1", "gateway-2"):
        allowed = services[gateway]["environment"]["LMB_NOVNC_ALLOWED"].split(",")
        assert set(allowed) == workers


def test_nginx_does_not_buffer_streams() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_buffering off;" in conf
    assert re.search(r"server gateway-1:8000", conf) and re.search(r"server gateway-2:8000", conf)


def test_nginx_passes_the_clients_host_with_its_port_and_retries_a_gateway_that_is_down() -> None:
    """What tests/integration/test_nginx.py shows with the real nginx, read off the file."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header Host $http_host;" in conf
    assert "proxy_set_header Host $host;" not in conf
    assert "proxy_next_upstream error timeout;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf


def test_compose_workers_serve_novnc_to_the_gateways_under_their_own_name(compose: dict) -> None:
    for name in ("worker-1", "worker-2"):
        env = compose["services"][name]["environment"]
        assert env["LMB_NOVNC_HOST"] == name and env["LMB_DISPLAY"] == "on"
        assert "ports" not in compose["services"][name]
