"""The Kubernetes chart (deploy/kubernetes), checked without a cluster.

For each example's values: rendered by Helm's own engine, linted by Helm, every object validated
against the Kubernetes OpenAPI schemas (strict: an unknown field is an error) of the newest
release kubernetes-validate bundles and of the oldest the chart supports, and held to the
project's rules (tests/support/kube.py). Each rule is shown to catch a breach of it, whether the
chart's values or a rendered object is broken.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from shared.settings import Settings
from tests.support.kube import (
    CHART,
    EXAMPLES,
    Obj,
    all_problems,
    component,
    containers,
    env,
    example,
    named,
    pod_spec,
    render,
)
from worker.heartbeat import alive_file

#: The oldest release the chart supports (Chart.yaml's kubeVersion) and the newest one bundled.
OLDEST = "1.30.0"
VERSIONS = [kubernetes_validate.latest_version(), OLDEST]
#: Settings the chart gives that the bridge does not read yet (the README's "Run it for a team").
EXPECTED_SETTINGS: set[str] = set()
URL_EXAMPLE = next(p for p in EXAMPLES if p.stem == "redis-url")
SENTINEL_EXAMPLE = next(p for p in EXAMPLES if p.stem == "redis-sentinel")


def redis_labels(values: dict[str, Any]) -> dict[str, str] | None:
    policy = values["redis"].get("networkPolicy", {})
    return policy["podSelector"] if policy.get("enabled") else None


@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.stem)
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], list[Obj]]:
    values = example(request.param)
    return values, render(values)


def test_the_chart_supports_the_oldest_release_checked() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={OLDEST}-0"
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(
    case: tuple[dict[str, Any], list[Obj]], version: str
) -> None:
    _, objects = case
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "StatefulSet",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceAccount",
    }
    invalid = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            invalid.append(f"{obj['kind']} {obj['metadata']['name']}: {exc.message}")
    assert not invalid, "\n".join(invalid)


def test_the_schema_check_is_strict() -> None:
    gateway = component(render(example(URL_EXAMPLE)), "Deployment", "gateway")
    pod_spec(gateway)["containers"][0]["readOnlyRootFilesytem"] = True  # sic: a typo
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFilesytem"):
        kubernetes_validate.validate(gateway, VERSIONS[0], strict=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_helm_lint_finds_nothing_to_say(path: Path) -> None:
    report = helm_python.lint(
        CHART, example(path), strict=True, kube_version=f"v{VERSIONS[0]}", namespace="lmb"
    )
    serious = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert not report["errors"] and not serious, report


def test_the_chart_keeps_the_rules(case: tuple[dict[str, Any], list[Obj]]) -> None:
    values, objects = case
    assert all_problems(objects, redis_labels(values)) == []


def test_redis_by_url_gets_the_password_from_its_secret() -> None:
    for workload in _workloads(render(example(URL_EXAMPLE))):
        variables = env(next(containers(workload)))
        # The password stays out of the URL: it may hold any character.
        assert variables["LMB_REDIS_URL"]["value"] == "rediss://redis.example.internal:6380/0"
        assert variables["LMB_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "lmarena-bridge-redis",
            "key": "password",
        }
        assert "LMB_REDIS_SENTINELS" not in variables and "LMB_REDIS_CA_CERTS" not in variables


def test_a_private_ca_for_redis_is_mounted_where_the_setting_says() -> None:
    values = _merged(
        example(SENTINEL_EXAMPLE),
        {"redis": {"caCertificate": {"secretName": "redis-tls"}, "sentinel": {"tls": True}}},
    )
    for workload in _workloads(render(values)):
        container = next(containers(workload))
        variables = env(container)
        assert variables["LMB_REDIS_TLS"]["value"] == "true"
        path = Path(variables["LMB_REDIS_CA_CERTS"]["value"])
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "redis-ca"]
        assert path.parent == Path(mount["mountPath"]) and mount["readOnly"]
        [volume] = [v for v in pod_spec(workload)["volumes"] if v["name"] == "redis-ca"]
        assert volume["secret"]["secretName"] == "redis-tls" and path.name == "ca.crt"


def test_gateways_believe_the_proxies_and_open_screens_the_chart_says() -> None:
    objects = render(_merged(example(URL_EXAMPLE), {"worker": {"screenNetworks": ["10.8.0.0/14"]}}))
    variables = env(next(containers(component(objects, "Deployment", "gateway"))))
    assert variables["LMB_TRUSTED_PROXIES"]["value"] == "*"
    assert variables["LMB_NOVNC_ALLOWED"]["value"] == "10.8.0.0/14"
    assert "FORWARDED_ALLOW_IPS" not in variables  # the bridge's own setting, checked at start
    assert Settings(trusted_proxies="*", novnc_allowed="10.8.0.0/14").novnc_allowed == [
        "10.8.0.0/14"
    ]


def test_a_worker_is_alive_while_it_touches_its_alive_file() -> None:
    worker = next(containers(component(render(example(URL_EXAMPLE)), "StatefulSet", "worker")))
    command = worker["livenessProbe"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    assert '"$LMB_STATE_DIR/health/$LMB_WORKER_ID.alive"' in command[2]
    assert alive_file(Path("$LMB_STATE_DIR"), "$LMB_WORKER_ID").as_posix() in command[2]


def test_redis_through_sentinel_names_the_sentinels_and_the_primary() -> None:
    values = example(SENTINEL_EXAMPLE)
    for workload in _workloads(render(values)):
        variables = env(next(containers(workload)))
        assert "LMB_REDIS_URL" not in variables
        assert variables["LMB_REDIS_SENTINELS"]["value"] == ",".join(
            values["redis"]["sentinel"]["hosts"]
        )
        assert variables["LMB_REDIS_SENTINEL_MASTER"]["value"] == "mymaster"
        assert variables["LMB_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "redis",
            "key": "redis-password",
        }


def test_every_setting_given_is_one_the_bridge_knows_or_is_listed_as_expected(
    case: tuple[dict[str, Any], list[Obj]],
) -> None:
    _, objects = case
    known = {f"LMB_{name.upper()}" for name in Settings.model_fields}
    given = {
        name
        for workload in _workloads(objects)
        for container in containers(workload)
        for name in env(container)
        if name.startswith("LMB_")
    }
    assert given - known <= EXPECTED_SETTINGS, given - known - EXPECTED_SETTINGS
    # Once the bridge reads one of them, it comes off the list.
    assert not (EXPECTED_SETTINGS & known)


def test_component_settings_are_added_and_the_charts_own_are_refused() -> None:
    values = _merged(
        example(URL_EXAMPLE),
        {
            "settings": {"LMB_LOG_LEVEL": "DEBUG"},
            "worker": {"settings": {"LMB_LOG_LEVEL": "WARNING", "LMB_HEARTBEAT_SECONDS": 5}},
        },
    )
    objects = render(values)
    gateway = env(next(containers(component(objects, "Deployment", "gateway"))))
    worker = env(next(containers(component(objects, "StatefulSet", "worker"))))
    assert gateway["LMB_LOG_LEVEL"]["value"] == "DEBUG"
    assert worker["LMB_LOG_LEVEL"]["value"] == "WARNING"
    assert worker["LMB_HEARTBEAT_SECONDS"]["value"] == "5"
    assert gateway["LMB_LOG_JSON"]["value"] == "true"  # the defaults stay
    values["worker"]["settings"] = {"LMB_WORKER_ID": "one-for-all"}
    with pytest.raises(helm_python.HelmError, match="LMB_WORKER_ID is set by the chart"):
        render(values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"redis": {"url": {"host": ""}}}, "redis.url.host"),
        ({"redis": {"mode": "cluster"}}, "redis/mode"),
        ({"redis": {"mode": "sentinel", "sentinel": {"hosts": []}}}, "redis.sentinel.hosts"),
        ({"redis": {"sentinel": {"hosts": ["no-port"]}}}, "sentinel/hosts"),
        ({"settings": {"log_level": "DEBUG"}}, "log_level"),
        ({"gatway": {"replicas": 3}}, "gatway"),
        ({"ingress": {"host": ""}}, "ingress.host"),
        ({"adminKey": {"secretName": ""}}, "adminKey"),
    ],
    ids=[
        "no-redis-host",
        "unknown-redis-mode",
        "sentinel-without-sentinels",
        "sentinel-without-port",
        "setting-not-lmb",
        "typo",
        "no-ingress-host",
        "no-admin-secret",
    ],
)
def test_values_it_cannot_serve_are_refused_with_the_reason(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmError, match=message):
        render(_merged(example(URL_EXAMPLE), change))


# --- each rule catches its breach ---

Breach = Callable[[list[Obj]], None]


def _workloads(objects: list[Obj]) -> list[Obj]:
    return [
        component(objects, "Deployment", "gateway"),
        component(objects, "StatefulSet", "worker"),
    ]


def _gateway(objects: list[Obj]) -> Obj:
    return pod_spec(component(objects, "Deployment", "gateway"))["containers"][0]


def _worker(objects: list[Obj]) -> Obj:
    return pod_spec(component(objects, "StatefulSet", "worker"))["containers"][0]


def _policy(objects: list[Obj], name: str) -> Obj:
    return next(p for p in named(objects, "NetworkPolicy") if p["metadata"]["name"].endswith(name))


def _root_worker(objects: list[Obj]) -> None:
    pod_spec(component(objects, "StatefulSet", "worker"))["securityContext"]["runAsUser"] = 0
    _worker(objects)["securityContext"].pop("runAsUser")


def _literal_admin_key(objects: list[Obj]) -> None:
    for entry in _gateway(objects)["env"]:
        if entry["name"] == "LMB_ADMIN_KEY":
            entry.pop("valueFrom")
            entry["value"] = "the-admin-key"


def _password_in_url(objects: list[Obj]) -> None:
    _gateway(objects)["env"].append(
        {"name": "LMB_REDIS_URL", "value": "rediss://:hunter2@redis.internal:6379/0"}
    )


def _worker_open_to_all(objects: list[Obj]) -> None:
    _policy(objects, "-worker")["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}})


def _worker_every_port(objects: list[Obj]) -> None:
    _policy(objects, "-worker")["spec"]["ingress"][0].pop("ports")


def _redis_open_to_all(objects: list[Obj]) -> None:
    _policy(objects, "-redis")["spec"]["ingress"][0]["from"].append({"podSelector": {}})


def _drop(objects: list[Obj], kind: str) -> None:
    objects[:] = [o for o in objects if o["kind"] != kind]


BREACHES: list[tuple[str, Breach, str]] = [
    (
        "gateway-runs-as-root",
        lambda o: (
            _gateway(o)["securityContext"].update(runAsNonRoot=False),
            pod_spec(component(o, "Deployment", "gateway"))["securityContext"].pop("runAsNonRoot"),
        ),
        "gateway: runAsNonRoot is not true",
    ),
    ("worker-uid-0", _root_worker, "worker: runAsUser is not a non-root uid"),
    (
        "escalation",
        lambda o: _worker(o)["securityContext"].update(allowPrivilegeEscalation=True),
        "allowPrivilegeEscalation is not false",
    ),
    (
        "capabilities-kept",
        lambda o: _gateway(o)["securityContext"].pop("capabilities"),
        "capabilities are not all dropped",
    ),
    (
        "capability-added",
        lambda o: _worker(o)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        "adds capabilities",
    ),
    (
        "no-seccomp",
        lambda o: (
            _worker(o)["securityContext"].pop("seccompProfile"),
            pod_spec(component(o, "StatefulSet", "worker"))["securityContext"].pop(
                "seccompProfile"
            ),
        ),
        "seccompProfile is not RuntimeDefault",
    ),
    (
        "writable-root",
        lambda o: _gateway(o)["securityContext"].update(readOnlyRootFilesystem=False),
        "gateway: root filesystem is writable",
    ),
    ("no-limits", lambda o: _worker(o)["resources"].pop("limits"), "no memory limits"),
    ("no-readiness", lambda o: _gateway(o).pop("readinessProbe"), "no readinessProbe"),
    ("no-liveness", lambda o: _worker(o).pop("livenessProbe"), "worker: no livenessProbe"),
    (
        "token-mounted",
        lambda o: pod_spec(component(o, "StatefulSet", "worker")).pop(
            "automountServiceAccountToken"
        ),
        "mounts a service account token",
    ),
    (
        "shm-on-disk",
        lambda o: next(
            v
            for v in pod_spec(component(o, "StatefulSet", "worker"))["volumes"]
            if v["name"] == "shm"
        )["emptyDir"].pop("medium"),
        "/dev/shm",
    ),
    (
        "profile-not-kept",
        lambda o: component(o, "StatefulSet", "worker")["spec"].pop("volumeClaimTemplates"),
        "not on its own claim",
    ),
    ("no-worker-policy", lambda o: _drop(o, "NetworkPolicy"), "worker: no NetworkPolicy"),
    ("worker-open", _worker_open_to_all, "not only the gateways"),
    ("worker-every-port", _worker_every_port, "not only noVNC"),
    ("redis-open", _redis_open_to_all, "redis: lets in"),
    ("no-hpa", lambda o: _drop(o, "HorizontalPodAutoscaler"), "no HorizontalPodAutoscaler"),
    ("no-pdb", lambda o: _drop(o, "PodDisruptionBudget"), "gateway: no PodDisruptionBudget"),
    ("literal-admin-key", _literal_admin_key, "LMB_ADMIN_KEY is not read from a Secret"),
    ("password-in-url", _password_in_url, "LMB_REDIS_URL carries credentials"),
    (
        "secret-rendered",
        lambda o: o.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "admin"}, "data": {}}
        ),
        "renders Secret admin",
    ),
]


@pytest.mark.parametrize(
    ("breach", "expected"), [b[1:] for b in BREACHES], ids=[b[0] for b in BREACHES]
)
def test_a_broken_object_is_caught(breach: Breach, expected: str) -> None:
    values = example(SENTINEL_EXAMPLE)  # every object the chart can make, the Redis policy too
    objects = render(values)
    assert all_problems(objects, redis_labels(values)) == []
    broken = copy.deepcopy(objects)
    breach(broken)
    problems = all_problems(broken, redis_labels(values))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"containerSecurityContext": {"readOnlyRootFilesystem": False}}, "writable"),
        (
            {"containerSecurityContext": {"allowPrivilegeEscalation": True}},
            "allowPrivilegeEscalation",
        ),
        (
            {"podSecurityContext": {"runAsUser": 0}, "containerSecurityContext": {"runAsUser": 0}},
            "uid",
        ),
        ({"networkPolicy": {"enabled": False}}, "no NetworkPolicy"),
        ({"networkPolicy": {"gatewayFrom": [{}]}}, "gateway: lets anyone in"),
        ({"gateway": {"autoscaling": {"enabled": False}}}, "no HorizontalPodAutoscaler"),
        (
            {"ingress": {"annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "on"}}},
            "buffers",
        ),
        (
            {"ingress": {"annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "60"}}},
            "proxy-read-timeout",
        ),
        ({"worker": {"novncPort": 5900}, "settings": {}}, None),
    ],
    ids=[
        "writable-root",
        "escalation",
        "root",
        "no-network-policies",
        "gateways-open",
        "no-autoscaling",
        "buffering",
        "short-timeout",
        "another-screen-port-is-fine",
    ],
)
def test_values_that_break_a_rule_are_caught(change: dict[str, Any], expected: str | None) -> None:
    values = _merged(example(URL_EXAMPLE), change)
    problems = all_problems(render(values), redis_labels(values))
    if expected is None:
        assert problems == []
    else:
        assert any(expected in problem for problem in problems), problems


def _merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`change` over `base`, maps merged key by key, as Helm merges a values file over another."""
    merged = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
