"""The deploy decision after a training run: install the bundle, compare its headline metric, maybe activate.

`decide_deployment()` is pure: given what the installed bundle reports, what the user asked for and (when the
project already runs a version) both versions' numbers on the same images, it says whether to activate and the
sentence the training page shows. The runner performs the install, the comparison (edge.assist.compare, on the
device's runtime) and the activation; their refusals are worded by `refused()` so every outcome reads alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DeployDecision:
    """What to do with an installed bundle: `state` is the run's outcome, `activate` whether to make it active."""

    state: Literal["deployed", "installed"]
    activate: bool
    headline: float | None
    reason: str


def headline_value(metrics: Mapping[str, Any], metric: str) -> float | None:
    """The bundle's value of `metric` as a float, None when it reports none (or not a number)."""
    value = metrics.get(metric)
    return float(value) if isinstance(value, int | float) else None


def decide_deployment(
    version: str,
    metrics: Mapping[str, Any],
    metric: str,
    threshold: float,
    comparison: Mapping[str, Any] | None = None,
) -> DeployDecision:
    """Activate `version` only when its headline `metric` reaches `threshold` and, given a `comparison` with the
    running version on the same images (edge.assist.compare.Comparison.as_dict()), it is not worse there."""
    decision = _by_threshold(version, metrics, metric, threshold)
    if comparison is None or comparison.get("running") is None or comparison.get("new") is None:
        return decision
    new, running = float(comparison["new"]), float(comparison["running"])
    where = comparison.get("images_from") or (
        f"test split {comparison.get('test_images')}, reviewed inbox {comparison.get('inbox_images')}"
    )
    same = (
        f"on the same {comparison.get('images')} images ({where}) {metric} {new:.3f} vs the running "
        f"{comparison.get('running_version')}'s {running:.3f}"
    )
    if new < running:
        reason = (
            f"installed {version} but not activated: {same}, worse; the running model keeps going "
            "(an administrator can activate it anyway)"
        )
        return DeployDecision("installed", False, decision.headline, reason)
    return DeployDecision(decision.state, decision.activate, decision.headline, f"{decision.reason}; {same}, not worse")


def _by_threshold(version: str, metrics: Mapping[str, Any], metric: str, threshold: float) -> DeployDecision:
    headline = headline_value(metrics, metric)
    if headline is None:
        reason = (
            f"installed {version} but not activated: the bundle reports no {metric} to compare "
            f"with the deploy threshold {threshold:g}"
        )
        return DeployDecision("installed", False, None, reason)
    if headline < threshold:
        reason = (
            f"installed {version} but not activated: {metric} {headline:.3f} is below the deploy "
            f"threshold {threshold:g}; the running model keeps going"
        )
        return DeployDecision("installed", False, headline, reason)
    return DeployDecision("deployed", True, headline, f"{metric} {headline:.3f} >= {threshold:g}: activated {version}")


def refused(err: Exception, *, version: str | None = None, running: str | None = None) -> str:
    """Why a run ends `refused`: the bundle did not install (version None) or did not activate."""
    if version is None:
        return f"bundle refused: {err}; still running {running or 'no model'}"
    return f"installed {version} but it could not be activated: {err}"
