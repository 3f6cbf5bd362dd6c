"""The Helm chart in deploy/kubernetes, rendered without a cluster or a helm binary, and the rules
its objects must keep, as a check that names each breach.

Rendering uses Helm's own engine (helm-python-sdk binds the official Go SDK); the objects are
plain dicts, so that a test can also break one on purpose and see the check catch it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

from tests.support.procs import ROOT

CHART = ROOT / "deploy" / "kubernetes" / "lmarena-bridge"
EXAMPLES = sorted((ROOT / "deploy" / "kubernetes" / "examples").glob("*.yaml"))
RELEASE, NAMESPACE = "bridge", "lmb"

Obj = dict[str, Any]
#: A pod that is none of ours: no rule may let it in.
STRANGER = {"app.kubernetes.io/name": "stranger", "app.kubernetes.io/instance": "stranger"}


def render(values: dict[str, Any]) -> list[Obj]:
    """Every object the chart makes with `values` (over its defaults), as `helm template` does."""
    manifests = helm_python.Chart.load(CHART).render(
        copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    return [
        doc
        for path, text in sorted(manifests.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def example(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def named(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def component(objects: list[Obj], kind: str, name: str) -> Obj:
    """The one `kind` object of a component (gateway, worker) of the release."""
    [found] = [
        o
        for o in objects
        if o["kind"] == kind and o["metadata"]["labels"].get("app.kubernetes.io/component") == name
    ]
    return found


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def containers(workload: Obj) -> Iterator[Obj]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) picks these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _effective(pod: Obj, container: Obj, field: str) -> Any:
    """A security setting as it applies: the container's, else the pod's."""
    own = container.get("securityContext", {})
    return own[field] if field in own else pod.get("securityContext", {}).get(field)


def _container_port(workload: Obj, port: int | str) -> int | None:
    for container in containers(workload):
        for p in container.get("ports", []):
            if port in (p.get("name"), p["containerPort"]):
                return p["containerPort"]
    return None


# --- the rules ---


def security_problems(objects: list[Obj]) -> list[str]:
    """Every pod unprivileged and bounded: non-root, no escalation, no capabilities, the runtime's
    seccomp profile, requests and limits, no host namespaces, no Kubernetes API token."""
    problems = []
    for workload in objects:
        if workload["kind"] not in {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}:
            continue
        where = f"{workload['kind']} {workload['metadata']['name']}"
        pod = pod_spec(workload)
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service account token")
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(host):
                problems.append(f"{where}: {host}")
        for container in containers(workload):
            at = f"{where}/{container['name']}"
            if _effective(pod, container, "runAsNonRoot") is not True:
                problems.append(f"{at}: runAsNonRoot is not true")
            if (_effective(pod, container, "runAsUser") or 0) == 0:
                problems.append(f"{at}: runAsUser is not a non-root uid")
            seccomp = _effective(pod, container, "seccompProfile") or {}
            if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
                problems.append(f"{at}: seccompProfile is not RuntimeDefault")
            own = container.get("securityContext", {})
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if own.get("privileged"):
                problems.append(f"{at}: privileged")
            capabilities = own.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []):
                problems.append(f"{at}: capabilities are not all dropped")
            if capabilities.get("add"):
                problems.append(f"{at}: adds capabilities {capabilities['add']}")
            if own.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: root filesystem is writable")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(bound, {}):
                        problems.append(f"{at}: no {resource} {bound}")
    return problems


def gateway_problems(objects: list[Obj]) -> list[str]:
    """Gateways: probed, reachable through a Service and the Ingress, autoscaled, disruption-bound."""
    problems = []
    gateway = component(objects, "Deployment", "gateway")
    [container] = pod_spec(gateway)["containers"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"gateway: no {probe} on {path}")
    labels = pod_labels(gateway)
    services = [
        s
        for s in named(objects, "Service")
        if selects({"matchLabels": s["spec"].get("selector", {})}, labels)
    ]
    if len(services) != 1:
        problems.append(f"gateway: {len(services)} Services select it")
    hpas = [
        h
        for h in named(objects, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == gateway["metadata"]["name"]
    ]
    if len(hpas) != 1:
        problems.append("gateway: no HorizontalPodAutoscaler scales it")
    elif "replicas" in gateway["spec"]:
        problems.append("gateway: sets replicas, which the autoscaler owns")
    if not any(
        selects(p["spec"]["selector"], labels) for p in named(objects, "PodDisruptionBudget")
    ):
        problems.append("gateway: no PodDisruptionBudget")
    for ingress in named(objects, "Ingress"):
        notes = ingress["metadata"].get("annotations", {})
        if notes.get("nginx.ingress.kubernetes.io/proxy-buffering") != "off":
            problems.append("ingress: buffers responses (SSE must pass as it comes)")
        for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
            if int(notes.get(f"nginx.ingress.kubernetes.io/{timeout}", 60)) < 3600:
                problems.append(f"ingress: {timeout} under an hour")
        backends = {
            path["backend"]["service"]["name"]
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
        }
        if backends != {s["metadata"]["name"] for s in services}:
            problems.append(f"ingress: routes to {backends}, not the gateways' Service")
    return problems


def worker_problems(objects: list[Obj]) -> list[str]:
    """Workers: one account a pod (a StatefulSet whose pod name is the worker id), the profile on
    a claim of its own, shared memory sized, the screen on a fixed port, the liveness probed."""
    problems = []
    worker = component(objects, "StatefulSet", "worker")
    pod = pod_spec(worker)
    [container] = pod["containers"]
    variables = env(container)
    if (
        variables.get("LMB_WORKER_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        != "metadata.name"
    ):
        problems.append("worker: LMB_WORKER_ID is not the pod's name")
    if (
        variables.get("LMB_NOVNC_HOST", {})
        .get("valueFrom", {})
        .get("fieldRef", {})
        .get("fieldPath")
        != "status.podIP"
    ):
        problems.append("worker: LMB_NOVNC_HOST is not the pod's address")
    novnc = _container_port(worker, "novnc")
    if novnc is None or variables.get("LMB_NOVNC_PORT", {}).get("value") != str(novnc):
        problems.append("worker: LMB_NOVNC_PORT is not its novnc port")
    if "livenessProbe" not in container:
        problems.append("worker: no livenessProbe")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    claims = {c["metadata"]["name"] for c in worker["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    state_dir = variables.get("LMB_STATE_DIR", {}).get("value", "/data")
    if mounts.get(state_dir) not in claims:
        problems.append(
            f"worker: its state ({state_dir}, the browser profile) is not on its own claim"
        )
    shm = volumes.get(mounts.get("/dev/shm", ""), {}).get("emptyDir", {})
    if shm.get("medium") != "Memory" or "sizeLimit" not in shm:
        problems.append("worker: /dev/shm is not a sized in-memory volume")
    for path in ("/tmp", variables.get("HOME", {}).get("value", "/home/bridge")):
        if path not in mounts:
            problems.append(f"worker: {path} is not writable under a read-only root")
    if not any(
        selects(p["spec"]["selector"], pod_labels(worker))
        for p in named(objects, "PodDisruptionBudget")
    ):
        problems.append("worker: no PodDisruptionBudget")
    return problems


def _ingress_peers(objects: list[Obj], labels: dict[str, str]) -> list[tuple[Obj, list[Obj]]]:
    """Each rule that lets traffic in to pods with `labels`: its peers and its ports."""
    rules = []
    for policy in named(objects, "NetworkPolicy"):
        if selects(policy["spec"]["podSelector"], labels) and "Ingress" in policy["spec"].get(
            "policyTypes", ["Ingress"]
        ):
            rules += [(rule, rule.get("from", [{}])) for rule in policy["spec"].get("ingress", [])]
    return rules


def network_problems(objects: list[Obj], redis_labels: dict[str, str] | None = None) -> list[str]:
    """Only gateways reach the workers, and only on the screen's port; the gateways are fenced;
    only the bridge's pods (and Redis's own) reach Redis, when it runs alongside."""
    problems = []
    gateway = component(objects, "Deployment", "gateway")
    worker = component(objects, "StatefulSet", "worker")
    gateway_labels, worker_labels = pod_labels(gateway), pod_labels(worker)

    worker_rules = _ingress_peers(objects, worker_labels)
    if not worker_rules and not any(
        selects(p["spec"]["podSelector"], worker_labels) for p in named(objects, "NetworkPolicy")
    ):
        problems.append("worker: no NetworkPolicy selects it")
    novnc = _container_port(worker, "novnc")
    gateways_in = [
        rule
        for rule, peers in worker_rules
        if any(selects(peer.get("podSelector", {}), gateway_labels) for peer in peers)
        and novnc in [_container_port(worker, p.get("port")) for p in rule.get("ports", [])]
    ]
    if not gateways_in:
        problems.append("worker: the gateways cannot reach its screen")
    for rule, peers in worker_rules:
        for peer in peers:
            if (
                set(peer) != {"podSelector"}
                or not selects(peer["podSelector"], gateway_labels)
                or selects(peer["podSelector"], worker_labels)
            ):
                problems.append(f"worker: lets in {peer or 'anyone'}, not only the gateways")
        ports = [_container_port(worker, p.get("port")) for p in rule.get("ports", [])]
        if ports != [novnc]:
            problems.append(f"worker: opens {ports or 'every port'}, not only noVNC ({novnc})")

    if not any(
        selects(p["spec"]["podSelector"], gateway_labels) for p in named(objects, "NetworkPolicy")
    ):
        problems.append("gateway: no NetworkPolicy selects it")
    for rule, peers in _ingress_peers(objects, gateway_labels):
        if peers == [{}] or any(not peer for peer in peers):
            problems.append("gateway: lets anyone in")
        if [_container_port(gateway, p.get("port")) for p in rule.get("ports", [])] != [8000]:
            problems.append("gateway: opens more than its HTTP port")

    if redis_labels is not None:
        rules = _ingress_peers(objects, redis_labels)
        if not rules:
            problems.append("redis: no NetworkPolicy lets the bridge in and keeps others out")
        for _rule, peers in rules:
            for peer in peers:
                inside = (
                    set(peer) == {"podSelector"}
                    and not selects(peer["podSelector"], STRANGER)
                    and (
                        selects(peer["podSelector"], redis_labels)
                        or (
                            selects(peer["podSelector"], gateway_labels)
                            and selects(peer["podSelector"], worker_labels)
                        )
                    )
                )
                if not inside:
                    problems.append(f"redis: lets in {peer or 'anyone'}")
    return problems


def secret_problems(objects: list[Obj]) -> list[str]:
    """Secrets are referenced, never rendered: no Secret object, the admin key and the Redis
    password read from Secrets, and the password put into the URL by Kubernetes, not the chart."""
    problems = [f"renders Secret {s['metadata']['name']}" for s in named(objects, "Secret")]
    for workload in (
        component(objects, "Deployment", "gateway"),
        component(objects, "StatefulSet", "worker"),
    ):
        for container in containers(workload):
            at = f"{workload['kind']} {workload['metadata']['name']}/{container['name']}"
            variables = container.get("env", [])
            names = [e["name"] for e in variables]
            for name in ("LMB_ADMIN_KEY", "LMB_REDIS_PASSWORD"):
                entry = env(container).get(name, {})
                if "secretKeyRef" not in entry.get("valueFrom", {}):
                    problems.append(f"{at}: {name} is not read from a Secret")
            # The password is LMB_REDIS_PASSWORD's alone: a URL with credentials would put them
            # in the manifest (and would need escaping).
            url = env(container).get("LMB_REDIS_URL", {}).get("value")
            if url is not None and "@" in url:
                problems.append(f"{at}: LMB_REDIS_URL carries credentials")
            if len(names) != len(set(names)):
                problems.append(f"{at}: sets a variable twice")
    return problems


def all_problems(objects: list[Obj], redis_labels: dict[str, str] | None = None) -> list[str]:
    return (
        security_problems(objects)
        + gateway_problems(objects)
        + worker_problems(objects)
        + network_problems(objects, redis_labels)
        + secret_problems(objects)
    )
