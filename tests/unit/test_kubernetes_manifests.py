"""deploy/kubernetes, validated offline (no cluster runs here): every resource against the
Kubernetes schemas in strict mode, the Sentinel overlay's patches applied, every variable a
tickonce setting, probes on routes and modules that exist, pods non-root and read-only, and
disruption budgets that never block a drain."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.processes import REPO
from tickonce._config.settings import Settings

KUBE = REPO / "deploy" / "kubernetes"
VERSION = "1.30.0"
KUSTOMIZATIONS = [KUBE / "base", KUBE / "overlays" / "sentinel"]


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def build(directory: Path) -> list[dict[str, Any]]:
    """What ``kustomize build`` gives for these kustomizations: resources, then patches merged
    into the resource of the same kind and name (data maps; all these overlays patch)."""
    kustomization = documents(directory / "kustomization.yaml")[0]
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        assert target.exists(), f"{directory}: resource {entry} does not exist"
        resources += build(target) if target.is_dir() else documents(target)
    for patch in kustomization.get("patches", []):
        path = directory / patch["path"]
        assert path.exists(), f"{directory}: patch {patch['path']} does not exist"
        for change in documents(path):
            [resource] = [
                r
                for r in resources
                if (r["kind"], r["metadata"]["name"])
                == (change["kind"], change["metadata"]["name"])
            ]
            for field in ("data", "stringData"):
                if field in change:
                    resource.setdefault(field, {}).update(change[field])
    return resources


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda path: path.name)
def test_every_resource_validates_against_the_kubernetes_schemas(directory: Path) -> None:
    resources = build(directory)
    kinds = sorted({r["kind"] for r in resources})
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"]
    for resource in resources:
        kubernetes_validate.validate(resource, VERSION, strict=True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda path: path.name)
def test_every_variable_is_a_tickonce_setting_and_the_settings_load(directory: Path) -> None:
    resources = build(directory)
    env: dict[str, str] = {}
    for resource in resources:
        if resource["kind"] in ("ConfigMap", "Secret"):
            env.update(resource.get("data", {}))
            env.update(resource.get("stringData", {}))
    known = {name.upper() for name in Settings.model_fields}
    assert set(env) <= known, f"not tickonce settings: {sorted(set(env) - known)}"
    settings = Settings.model_validate({name.lower(): value for name, value in env.items()})
    if directory.name == "sentinel":
        assert settings.redis_sentinels and settings.claim_min_replicas == 1


def test_probes_pods_and_budgets() -> None:
    resources = build(KUBE / "base")
    deployments = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Deployment"}
    api = deployments["tickonce-api"]["spec"]["template"]["spec"]
    scheduler = deployments["tickonce-scheduler"]["spec"]
    [api_container] = api["containers"]
    assert api_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    from tickonce._api.app import create_app

    assert {"/healthz", "/readyz"} <= set(create_app(Settings()).openapi()["paths"])
    [scheduler_container] = scheduler["template"]["spec"]["containers"]
    module = scheduler_container["livenessProbe"]["exec"]["command"][-1]
    assert importlib.util.find_spec(module) is not None, module
    assert scheduler["replicas"] == 2, "a leader and a hot standby"

    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
        assert pod["affinity"]["podAntiAffinity"], f"{name}: no anti-affinity"
        grace = Settings().shutdown_grace_seconds
        assert pod["terminationGracePeriodSeconds"] > grace, f"{name}: jobs cut before grace"

    for budget in (r for r in resources if r["kind"] == "PodDisruptionBudget"):
        spec = budget["spec"]
        assert spec["maxUnavailable"] >= 1, "a budget of 0 would block every drain"
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
