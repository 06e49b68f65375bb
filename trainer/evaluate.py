"""Honest evaluation: the exported model (through the device's own runtime wrapper) on images it did not train on.

Classification metrics: confusion matrix (rows = true label, columns = predicted), accuracy, per-label precision,
recall, F1 and support, macro F1, one-vs-rest PR curve points per label, and a suggested score threshold for a
target precision (default 0.9): for each label the lowest threshold at which that label's predictions reach the
target precision (most recall kept), and for the manifest the lowest threshold on the "alert" score (highest
probability among the alert labels) at which alerts reach the target precision.

The report is report.json (machine-readable), confusion_matrix.png and pr_curve.png (matplotlib, Agg), and
report.html: one page with the pictures inlined as data: URIs, no external assets. How the numbers were measured
(a hold-out test split, or k-fold cross-validation for small datasets: trainer/crossval.py) is the report's
`evaluation` entry, and the page says it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainer.errors import TrainingError

log = logging.getLogger(__name__)

DEFAULT_TARGET_PRECISION = 0.9
MAX_CURVE_POINTS = 60


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def pr_curve(scores: np.ndarray, positive: np.ndarray) -> list[dict[str, float]]:
    """Precision/recall at every distinct score threshold (descending), thinned to at most MAX_CURVE_POINTS."""
    n_pos = int(positive.sum())
    if len(scores) == 0:
        return []
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order].astype(np.int64)
    tp = np.cumsum(p)
    fp = np.cumsum(1 - p)
    # Keep the last index of each run of equal scores: a threshold admits all of them or none.
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    points = [
        {
            "threshold": float(s[i]),
            "precision": _safe_div(tp[i], tp[i] + fp[i]),
            "recall": _safe_div(tp[i], n_pos),
        }
        for i in last
    ]
    if len(points) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(points) - 1, MAX_CURVE_POINTS).round().astype(int))
        points = [points[i] for i in keep]
    return points


def threshold_for_precision(scores: np.ndarray, positive: np.ndarray, target: float) -> float | None:
    """The lowest score threshold whose admitted items reach `target` precision (None when none does)."""
    if len(scores) == 0 or not positive.any():
        return None
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order].astype(np.int64)
    tp = np.cumsum(p)
    precision = tp / np.arange(1, len(s) + 1)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    ok = [i for i in last if precision[i] >= target and tp[i] > 0]
    return float(s[max(ok)]) if ok else None


def classification_metrics(
    labels: Sequence[str],
    y_true: np.ndarray,
    probs: np.ndarray,
    *,
    alert_labels: Sequence[str] | None = None,
    target_precision: float = DEFAULT_TARGET_PRECISION,
) -> dict[str, Any]:
    """Every classification metric of the report from true label indices and predicted probabilities [N, C]."""
    n_classes = len(labels)
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(y_true), n_classes):
        raise TrainingError(f"probabilities have shape {probs.shape}, expected ({len(y_true)}, {n_classes})")
    pred = probs.argmax(1) if len(y_true) else np.zeros(0, np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, pred), 1)
    per_label: dict[str, dict[str, float]] = {}
    curves: dict[str, list[dict[str, float]]] = {}
    suggested: dict[str, float | None] = {}
    for k, name in enumerate(labels):
        tp = float(cm[k, k])
        precision = _safe_div(tp, cm[:, k].sum())
        recall = _safe_div(tp, cm[k, :].sum())
        f1 = _safe_div(2 * precision * recall, precision + recall)
        per_label[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(cm[k, :].sum())}
        positive = y_true == k
        curves[name] = pr_curve(probs[:, k], positive)
        suggested[name] = threshold_for_precision(probs[:, k], positive, target_precision)
    alerts = [lab for lab in (alert_labels or []) if lab in labels]
    if alerts and len(alerts) < n_classes:
        idx = [labels.index(a) for a in alerts]
        alert_score = probs[:, idx].max(1)
        alert_true = np.isin(y_true, idx)
        score_threshold = threshold_for_precision(alert_score, alert_true, target_precision)
        basis = f"highest probability among alert labels {alerts}"
    else:
        # Every label is an answer: the threshold is on the top-1 score, "positive" = the top-1 label is right.
        top = probs.max(1) if len(y_true) else np.zeros(0)
        score_threshold = threshold_for_precision(top, pred == y_true, target_precision)
        basis = "top-1 probability (accepted predictions must be right)"
    return {
        "accuracy": _safe_div(float(np.trace(cm)), float(cm.sum())),
        "macro_f1": float(np.mean([v["f1"] for v in per_label.values()])) if per_label else 0.0,
        "per_label": per_label,
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "samples": len(y_true),
        "pr_curves": curves,
        "target_precision": target_precision,
        "suggested_thresholds": suggested,
        "suggested_score_threshold": score_threshold,
        "score_threshold_basis": basis,
    }


# ------------------------------------------------------------------------------------------------ running


def predict_probabilities(
    bundle_dir: Path,
    images: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    count: int,
    *,
    engine: str = "onnxruntime",
    manifest: Any = None,
    threads: int | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Probabilities [N, C] of the bundle's model (device wrapper, chosen engine) on BGR images or crops."""
    from edge.runtime.wrappers import ClassificationModel, load_model

    model = load_model(bundle_dir, engine=engine, threads=threads, manifest=manifest)  # type: ignore[arg-type]
    if not isinstance(model, ClassificationModel):
        raise TrainingError(f"bundle {bundle_dir} is a {model.task} model, not classification")
    rows: list[np.ndarray] = []
    for start in range(0, count, batch_size):
        chunk = [images(i) if callable(images) else images[i] for i in range(start, min(count, start + batch_size))]
        for result in model.predict_batch(chunk):
            rows.append(np.array([result.label_scores[lab] for lab in model.labels], dtype=np.float64))
    return np.stack(rows) if rows else np.zeros((0, len(model.labels)))


# ------------------------------------------------------------------------------------------------ report


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def confusion_png(labels: Sequence[str], cm: Sequence[Sequence[int]], scope: str = "test split") -> bytes:
    """The confusion matrix as a PNG (counts in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    matrix = np.asarray(cm)
    size = 2.5 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        top = matrix.max() if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
        ax.set_title(f"Confusion matrix ({scope})")
        return _png(fig)
    finally:
        plt.close(fig)


def pr_png(curves: dict[str, list[dict[str, float]]], target: float, scope: str = "test split") -> bytes:
    """One precision-recall curve per label as a PNG, with the target precision drawn."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    try:
        for name, points in curves.items():
            if points:
                ax.plot([p["recall"] for p in points], [p["precision"] for p in points], marker=".", label=name)
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target precision {target:.2f}")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"Precision-recall per label ({scope})")
        ax.legend(loc="lower left", fontsize="small")
        return _png(fig)
    finally:
        plt.close(fig)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _method_html(report: dict[str, Any], count: int) -> str:
    """The sentence saying how the numbers were measured (hold-out test split or k-fold), with the folds' spread."""
    e = html.escape
    evaluation = report.get("evaluation") or {}
    if evaluation.get("method") != "kfold":
        return (
            f"Evaluated with the exported model through {e(str(report.get('engine', 'onnxruntime')))} on {count} "
            "test samples it did not train on."
        )
    spread = ", ".join(
        f"{e(name)} {v['mean']:.3f} &plusmn; {v['std']:.3f} (folds {v['min']:.3f}&ndash;{v['max']:.3f})"
        for name, v in (evaluation.get("metrics") or {}).items()
    )
    reason = e(str(evaluation.get("reason", "")))
    return (
        f"Evaluated by {evaluation.get('folds')}-fold cross-validation by photo ({reason}): every one of the "
        f"{count} samples was tested once by a model that did not train on its photo; "
        f"mean &plusmn; spread over the folds: {spread}. The confusion matrix and curves pool the folds' "
        "predictions; the shipped model was then trained on every image."
    )


def report_html(report: dict[str, Any], confusion: bytes, pr: bytes) -> str:
    """One self-contained HTML page: headline, warnings, per-label table, the two pictures, parity, timings."""
    e = html.escape
    metrics = report.get("metrics", {})
    label_thresholds = metrics.get("suggested_thresholds", {})

    def _fmt(value: float | None) -> str:
        return "" if value is None else f"{value:.3f}"

    warnings = "".join(f"<li>{e(w)}</li>" for w in report.get("warnings", []))
    parity = e(json.dumps(report.get("parity", {}), indent=2))
    split = e(json.dumps(report.get("split", {}), indent=2))
    seconds = e(json.dumps(report.get("seconds", {}), indent=2))
    thr = metrics.get("suggested_score_threshold")
    if report.get("task") == "detection":
        sug = metrics.get("suggested_threshold", {})
        headline = (
            f"<p>mAP@0.5 <b>{metrics.get('map50', 0):.3f}</b>, mAP@0.5:0.95 <b>{metrics.get('map50_95', 0):.3f}</b>; "
            f"at score {metrics.get('score_threshold', 0):.3f}: precision {metrics.get('precision', 0):.3f}, "
            f"recall {metrics.get('recall', 0):.3f}, F1 {metrics.get('f1', 0):.3f} (IoU 0.5). Threshold for "
            f"precision {sug.get('target_precision', DEFAULT_TARGET_PRECISION):.2f}: "
            f"<b>{'not reached' if sug.get('threshold') is None else format(sug['threshold'], '.3f')}</b>.</p>"
        )
        rows = "".join(
            f"<tr><td>{e(name)}</td><td>{v.get('precision', 0):.3f}</td><td>{v.get('recall', 0):.3f}</td>"
            f"<td>{v.get('f1', 0):.3f}</td><td>{v.get('ground_truth', 0)}</td><td>AP50 {v.get('ap50', 0):.3f}</td></tr>"
            for name, v in metrics.get("per_label", {}).items()
        )
    else:
        rows = "".join(
            f"<tr><td>{e(name)}</td><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td><td>{v['f1']:.3f}</td>"
            f"<td>{v['support']}</td><td>{_fmt(label_thresholds.get(name))}</td></tr>"
            for name, v in metrics.get("per_label", {}).items()
        )
        headline = (
            f"<p>Accuracy <b>{metrics.get('accuracy', 0):.3f}</b>, macro F1 <b>{metrics.get('macro_f1', 0):.3f}</b>; "
            f"suggested score threshold for precision "
            f"{metrics.get('target_precision', DEFAULT_TARGET_PRECISION):.2f}: "
            f"<b>{'not reached' if thr is None else format(thr, '.3f')}</b> "
            f"({e(str(metrics.get('score_threshold_basis', '')))}).</p>"
        )
    count = metrics.get("samples", metrics.get("images", 0))
    confusion_html = (
        f'<h2>Confusion matrix</h2><img alt="confusion matrix" src="{_data_uri(confusion)}">' if confusion else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Shelfwatch training report {e(str(report.get("version", "")))}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.warn{{background:#fff3cd;border:1px solid #e0c060;padding:.5em 1em}}
img{{max-width:100%}}pre{{background:#f5f5f5;padding:.5em;overflow:auto}}</style></head><body>
<h1>{e(str(report.get("name", "model")))} {e(str(report.get("version", "")))}</h1>
<p>Task <b>{e(str(report.get("task", "")))}</b>, backbone <b>{e(str(report.get("base", {}).get("backbone", "")))}</b>
(weights: {e(str(report.get("base", {}).get("weights", "")))}). {_method_html(report, count)}</p>
{headline}
{f'<div class="warn"><b>Warnings</b><ul>{warnings}</ul></div>' if warnings else ""}
<h2>Per label</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>
<th>threshold @ target</th></tr>{rows}</table>
{confusion_html}
<h2>Precision-recall</h2><img alt="precision-recall curves" src="{_data_uri(pr)}">
<h2>Split</h2><pre>{split}</pre>
<h2>Export parity (torch vs ONNX Runtime vs OpenVINO)</h2><pre>{parity}</pre>
<h2>Time (seconds)</h2><pre>{seconds}</pre>
</body></html>
"""


def write_report(out_dir: Path, report: dict[str, Any]) -> dict[str, Path]:
    """report.json, the pictures (confusion_matrix.png for classification, pr_curve.png) and report.html into
    out_dir; returns bundle-relative name -> path."""
    metrics = report.get("metrics", {})
    out_dir.mkdir(parents=True, exist_ok=True)
    target = metrics.get("target_precision") or metrics.get("suggested_threshold", {}).get(
        "target_precision", DEFAULT_TARGET_PRECISION
    )
    kfold = (report.get("evaluation") or {}).get("method") == "kfold"
    scope = "all folds' held-out predictions" if kfold else "test split"
    if report.get("task") == "detection":
        confusion = b""
        pr = pr_png({"all labels (IoU 0.5)": metrics.get("pr_curve", [])}, target, scope)
    else:
        confusion = confusion_png(metrics.get("labels", []), metrics.get("confusion_matrix", []), scope)
        pr = pr_png(metrics.get("pr_curves", {}), target, scope)
    paths = {"report.json": out_dir / "report.json", "pr_curve.png": out_dir / "pr_curve.png"}
    if confusion:
        paths["confusion_matrix.png"] = out_dir / "confusion_matrix.png"
        paths["confusion_matrix.png"].write_bytes(confusion)
    paths["report.html"] = out_dir / "report.html"
    paths["report.json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    paths["pr_curve.png"].write_bytes(pr)
    paths["report.html"].write_text(report_html(report, confusion, pr), encoding="utf-8")
    return paths


# ------------------------------------------------------------------------------------------------ CLI entry


def evaluate_bundle(
    bundle_dir: Path,
    data: Path,
    fmt: str | None,
    *,
    engine: str = "onnxruntime",
    zones: Sequence[Any] | None = None,
    trusted_key: str | None = None,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    threads: int | None = None,
) -> dict[str, Any]:
    """Evaluate a bundle's exported model on every sample of a dataset (all splits); the metrics as a dict."""
    from edge.bundle import read_manifest, verify_bundle
    from trainer.data import read_any

    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir, [trusted_key]) if trusted_key else read_manifest(bundle_dir)
    dataset = read_any(Path(data), fmt)
    head: dict[str, Any] = {
        "task": manifest.task,
        "bundle": str(bundle_dir),
        "version": manifest.version,
        "engine": engine,
        "verified": bool(trusted_key),
    }
    if manifest.task == "detection":
        return head | _evaluate_detection(bundle_dir, manifest, dataset, engine, target_precision, threads)
    from trainer.data import classification_samples, sample_image

    labels, samples, warnings = classification_samples(dataset, zones)
    known = {name: i for i, name in enumerate(manifest.labels)}
    usable = [(s, labels[s.label]) for s, _ in samples if labels[s.label] in known]
    skipped = len(samples) - len(usable)
    if skipped:
        foreign = sorted({labels[s.label] for s, _ in samples} - set(known))
        warnings.append(f"{skipped} samples carry labels the model does not know ({foreign}) and were skipped")
    if not usable:
        raise TrainingError(f"no sample of {data} carries one of the model's labels {manifest.labels}")
    cache: dict[Path, np.ndarray] = {}
    probs = predict_probabilities(
        bundle_dir,
        lambda i: sample_image(usable[i][0], cache),
        len(usable),
        engine=engine,
        manifest=manifest,
        threads=threads,
    )
    y_true = np.array([known[name] for _, name in usable])
    metrics = classification_metrics(
        manifest.labels,
        y_true,
        probs,
        alert_labels=manifest.effective_alert_labels(),
        target_precision=target_precision,
    )
    if len(usable) < 10 * len(manifest.labels):
        warnings.append(f"tiny evaluation set ({len(usable)} samples): treat the metrics as rough")
    return head | {
        "samples": metrics["samples"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "per_label": metrics["per_label"],
        "confusion_matrix": metrics["confusion_matrix"],
        "labels": metrics["labels"],
        "suggested_score_threshold": metrics["suggested_score_threshold"],
        "warnings": warnings,
    }


def detection_predictions(
    bundle_dir: Path,
    manifest: Any,
    image_paths: Sequence[Path],
    *,
    engine: str = "onnxruntime",
    threads: int | None = None,
    score_threshold: float = 0.01,
) -> list[Any]:
    """Detections of the bundle's exported model per image (low threshold: what mAP needs)."""
    from edge.runtime.wrappers import DetectionModel, load_model
    from trainer.data import load_image

    model = load_model(bundle_dir, engine=engine, threads=threads, manifest=manifest)  # type: ignore[arg-type]
    if not isinstance(model, DetectionModel):
        raise TrainingError(f"bundle {bundle_dir} is a {model.task} model, not detection")
    out: list[Any] = []
    for start in range(0, len(image_paths), 8):
        images = [load_image(p) for p in image_paths[start : start + 8]]
        out.extend(model.predict_batch(images, score_threshold=score_threshold))
    return out


def _evaluate_detection(
    bundle_dir: Path, manifest: Any, dataset: Any, engine: str, target_precision: float, threads: int | None
) -> dict[str, Any]:
    from trainer.detection.metrics import detection_metrics

    labels = list(manifest.labels)
    samples = [s for s in dataset.samples if s.boxes or not s.tags]
    foreign = sorted({b.label for s in samples for b in s.boxes} - set(labels))
    warnings = []
    if foreign:
        warnings.append(f"boxes with labels the model does not know were ignored: {foreign}")
    truth = [[b for b in s.boxes if b.label in labels] for s in samples]
    if not any(truth):
        raise TrainingError(f"no box of the dataset carries one of the model's labels {labels}")
    predictions = detection_predictions(bundle_dir, manifest, [s.path for s in samples], engine=engine, threads=threads)
    metrics = detection_metrics(
        predictions, truth, labels, score_threshold=manifest.thresholds.score, target_precision=target_precision
    )
    return {
        "images": metrics["images"],
        "map50": metrics["map50"],
        "map50_95": metrics["map50_95"],
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "f1": metrics["f1"],
        "score_threshold": metrics["score_threshold"],
        "per_label": metrics["per_label"],
        "suggested_threshold": metrics["suggested_threshold"],
        "warnings": warnings,
    }
