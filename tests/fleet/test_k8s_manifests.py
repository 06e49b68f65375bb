"""deploy/k8s: every manifest validates against the Kubernetes API schemas (kubernetes-validate bundles them:
offline, strict, so a misspelt field fails), references only Secrets it does not define, and the ConfigMap's
trainer.yaml is a valid TrainerConfig once its ${ENV} placeholders are filled."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"


def _documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def test_every_manifest_matches_the_kubernetes_schema() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (dev)")
    docs = _documents()
    kinds = sorted({d["kind"] for _, d in docs})
    assert kinds == ["ConfigMap", "Deployment", "Namespace", "Service", "StatefulSet"], kinds
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            raise AssertionError(f"{name}: {doc['kind']} {doc['metadata']['name']}: {err.message}") from err


def test_a_misspelt_field_is_caught() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (dev)")
    deployment = next(d for _, d in _documents() if d["metadata"]["name"] == "shelfwatch-trainer-api")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_no_secret_is_committed() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert all(doc["kind"] != "Secret" for _, doc in _documents())


def test_trainer_yaml_in_the_configmap_is_a_valid_trainer_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.config import CeleryQueueConfig, PostgresStoreConfig, S3StorageConfig, TrainerConfig

    config_map = next(d for _, d in _documents() if d["kind"] == "ConfigMap")
    env_names = {
        e["name"]
        for _, d in _documents()
        if d["kind"] == "Deployment" and "trainer" in d["metadata"]["name"]
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
    }
    for name in env_names:
        monkeypatch.setenv(name, f"value-of-{name.lower()}")
    config = TrainerConfig.model_validate(yaml.safe_load(config_map["data"]["trainer.yaml"]))
    assert isinstance(config.queue, CeleryQueueConfig) and isinstance(config.job_store, PostgresStoreConfig)
    assert isinstance(config.storage, S3StorageConfig) and config.signing_key is not None
    assert config.job_store.url.get_secret_value() == "value-of-database_url"  # filled from the Secret's env
