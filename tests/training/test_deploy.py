"""The deploy decision after a training run: activate only when the headline metric reaches the threshold."""

from __future__ import annotations

import pytest

from edge.errors import BundleError, ConflictError
from edge.training.deploy import decide_deployment, headline_value, refused
from edge.training.plan import DatasetNotReady, TrainingPlan


def test_a_metric_at_or_above_the_threshold_activates() -> None:
    at = decide_deployment("v2", {"accuracy": 0.85}, "accuracy", 0.85)
    assert at.activate and at.state == "deployed" and at.headline == 0.85
    assert at.reason == "accuracy 0.850 >= 0.85: activated v2"
    above = decide_deployment("v3", {"map50": 1}, "map50", 0.5)
    assert above.activate and above.headline == 1.0


def test_a_metric_below_the_threshold_installs_without_activating() -> None:
    decision = decide_deployment("v2", {"accuracy": 0.7, "map50": 0.99}, "accuracy", 0.85)
    assert not decision.activate and decision.state == "installed" and decision.headline == 0.7
    assert "0.700 is below the deploy threshold 0.85" in decision.reason
    assert "the running model keeps going" in decision.reason


@pytest.mark.parametrize("metrics", [{}, {"accuracy": None}, {"accuracy": "0.9"}, {"macro_f1": 0.9}])
def test_a_bundle_without_the_metric_is_installed_not_activated(metrics: dict) -> None:
    decision = decide_deployment("v2", metrics, "accuracy", 0.5)
    assert not decision.activate and decision.state == "installed" and decision.headline is None
    assert "reports no accuracy" in decision.reason
    assert headline_value(metrics, "accuracy") is None


def test_refusals_say_what_keeps_running() -> None:
    err = BundleError("signature does not verify")
    assert refused(err, running=None) == "bundle refused: signature does not verify; still running no model"
    assert refused(err, running="v1").endswith("still running v1")
    assert refused(err, version="v2") == "installed v2 but it could not be activated: signature does not verify"


def test_the_readiness_gate_names_the_task_and_its_problems() -> None:
    ready = TrainingPlan("classification", None, {"ready": True, "problems": []})
    assert ready.require_ready() is ready
    blocked = TrainingPlan("detection", None, {"ready": False, "problems": ["too few images", "no boxes"]})
    with pytest.raises(DatasetNotReady, match="not ready for detection: too few images; no boxes") as caught:
        blocked.require_ready()
    assert isinstance(caught.value, ConflictError)  # the web answers 409
