/* Train page: readiness verdict, start a run, live progress (polled), evaluation report, deploy decision, history. */
"use strict";
(() => {
  const { api, toast, h } = SW;
  const form = document.getElementById("train-form");
  const trainBtn = document.getElementById("train");
  let summary = null;
  let overview = null;
  let shownReport = null;
  const ACTIVE = new Set(["starting", "uploading", "queued", "training", "evaluating", "exporting", "downloading", "installing"]);
  const fmt = (v, d = 3) => (typeof v === "number" ? v.toFixed(d) : v === null || v === undefined ? "–" : String(v));
  const when = (iso) => (iso || "").replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "");
  // The ETA the trainer reports jumps (464 s -> 205 s -> 20 s) as stages change speed: show a countdown that
  // follows each new report only part of the way, rounded, so it moves steadily.
  let eta = null;
  function smoothEta(runId, reported) {
    const now = performance.now() / 1000;
    if (typeof reported !== "number" || reported < 0) { eta = null; return null; }
    if (!eta || eta.run !== runId) { eta = { run: runId, value: reported, at: now }; return reported; }
    const counted = Math.max(0, eta.value - (now - eta.at));
    eta = { run: runId, value: 0.7 * counted + 0.3 * reported, at: now };
    return eta.value;
  }
  const etaText = (s) => (s === null ? null : s < 10 ? "a few seconds" : s < 90 ? `about ${Math.round(s / 5) * 5} s` : `about ${Math.round(s / 60)} min`);
  const stateClass = (s) => (s === "deployed" ? "ok" : ["failed", "refused"].includes(s) ? "bad" : s === "installed" ? "warn" : "");

  async function loadSummary() {
    const task = form.task.value === "auto" ? "" : `?task=${form.task.value}`;
    summary = await api("GET", `/api/v1/dataset/summary${task}`);
    const verdict = document.getElementById("verdict");
    verdict.className = "verdict " + (summary.ready ? "ready" : "notready");
    document.getElementById("verdict-title").textContent = summary.ready
      ? `Ready to train ${summary.task}: ${summary.tagged} tagged images`
      : `Not ready to train ${summary.task} yet`;
    const list = document.getElementById("problems");
    list.replaceChildren(...(summary.problems || []).map((p) => h("li", { text: p })));
    updateButton();
  }

  function updateButton() {
    const busy = overview && overview.current;
    const configured = overview && overview.trainer_configured;
    trainBtn.disabled = !(summary && summary.ready && configured && !busy);
    trainBtn.title = !configured ? "No trainer service configured (trainer.url in edge.yaml)"
      : busy ? "A training run is in progress"
      : summary && !summary.ready ? (summary.problems || []).join("\n") : "Start training";
  }

  function kv(el, pairs) {
    el.replaceChildren(...pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]));
  }

  function showCurrent(run) {
    const box = document.getElementById("current");
    box.hidden = !run;
    if (!run) return;
    const p = run.progress || {};
    document.getElementById("cur-title").textContent = `Training ${run.task} (${run.id})`;
    const pill = document.getElementById("cur-state");
    pill.textContent = run.state; pill.className = "pill";
    let fraction = typeof p.fraction === "number" ? p.fraction : null;
    if (fraction === null && p.epoch && p.epochs) fraction = p.epoch / p.epochs;
    document.getElementById("cur-bar").style.width = `${Math.round(100 * Math.max(0, Math.min(1, fraction || 0)))}%`;
    kv(document.getElementById("cur-kv"), [
      ["Stage", p.stage || run.job_state || run.state],
      ["Epoch", typeof p.epoch === "number" ? `${p.epoch}${typeof p.epochs === "number" ? " / " + p.epochs : ""}` : null],
      ["Loss", typeof p.loss === "number" ? p.loss.toFixed(4) : null],
      ["Time left", etaText(smoothEta(run.id, run.eta_seconds))],
      ["Now", p.message],
      ["Trainer job", run.job_id],
      ["Warnings", (run.warnings || []).join("; ")],
    ]);
  }

  function confusionTable(labels, cm) {
    if (!labels || !cm || !cm.length) return h("p", { class: "muted", text: "No confusion matrix in this report." });
    const head = h("tr", {}, h("th", { text: "true \\ predicted" }), ...labels.map((l) => h("th", { text: l })));
    const rows = cm.map((row, i) => h("tr", {}, h("th", { text: labels[i] }), ...row.map((v, j) => h("td", { class: i === j ? "diag" : "", text: String(v) }))));
    return h("table", { class: "cm" }, h("thead", {}, head), h("tbody", {}, ...rows));
  }

  async function showResult(run) {
    const box = document.getElementById("result");
    if (!run || !run.has_report && !run.decision && !run.error) { box.hidden = true; return; }
    box.hidden = false;
    STUDIO.refreshChecklist();  // a new version ticks Train (and Watch, once it runs)
    document.getElementById("res-title").textContent = run.display_name ? `Result: ${run.display_name}` : `Result of the run started ${when(run.created)}`;
    const decision = document.getElementById("res-decision");
    decision.textContent = run.decision || run.error || run.state;
    decision.className = "alert " + (run.state === "deployed" ? "ok" : run.state === "installed" ? "warn" : "error");
    const warnBox = document.getElementById("res-warnings");
    warnBox.hidden = !(run.warnings || []).length;
    warnBox.replaceChildren(h("b", { text: "Read the numbers with care: " }), h("ul", { class: "warnings-list" }, ...(run.warnings || []).map((w) => h("li", { text: w }))));
    const reportLink = document.getElementById("res-report");
    reportLink.hidden = !(run.version && run.has_report);
    if (run.version) reportLink.href = `/models/${encodeURIComponent(run.version)}/report`;
    if (shownReport === run.id + run.updated) return;
    shownReport = run.id + run.updated;
    const full = await api("GET", `/api/v1/training/${encodeURIComponent(run.id)}`);
    const report = full.report || {};
    const m = report.metrics || {};
    const perLabel = m.per_label || {};
    const cols = Object.keys(Object.values(perLabel)[0] || {}).filter((k) => ["precision", "recall", "f1", "ap50", "support", "ground_truth"].includes(k));
    const perLabelTable = document.getElementById("per-label");
    perLabelTable.hidden = Object.keys(perLabel).length === 0;
    perLabelTable.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", { text: "Label" }), ...cols.map((c) => h("th", { text: c })))),
      h("tbody", {}, ...Object.entries(perLabel).map(([name, v]) => h("tr", {}, h("td", { text: name }), ...cols.map((c) => h("td", { text: fmt(v[c], c === "support" || c === "ground_truth" ? 0 : 3) }))))),
    );
    kv(document.getElementById("res-kv"), [
      ["Accuracy", m.accuracy !== undefined ? fmt(m.accuracy) : null],
      ["Macro F1", m.macro_f1 !== undefined ? fmt(m.macro_f1) : null],
      ["mAP@0.5", m.map50 !== undefined ? fmt(m.map50) : null],
      ["mAP@0.5:0.95", m.map50_95 !== undefined ? fmt(m.map50_95) : null],
      ["Precision / recall / F1", m.precision !== undefined ? `${fmt(m.precision)} / ${fmt(m.recall)} / ${fmt(m.f1)}` : null],
      ["Test samples", m.samples],
      [`Headline (${run.metric})`, fmt(run.headline)],
      ["Deploy threshold", run.deploy_threshold],
    ]);
    const cm = document.getElementById("cm");
    cm.replaceChildren(confusionTable(m.labels || report.labels, m.confusion_matrix));
    cm.parentElement.hidden = !(m.confusion_matrix && m.confusion_matrix.length);  // a detector has none
    const figs = document.getElementById("figs");
    figs.replaceChildren();
    const files = full.files || [];
    const base = run.version ? `/api/v1/models/${encodeURIComponent(run.version)}/files/` : "";
    for (const [file, alt] of [["confusion_matrix.png", "Confusion matrix"], ["pr_curve.png", "Precision-recall curve"]]) {
      if (files.includes(file)) figs.append(h("img", { src: base + file, alt, loading: "lazy" }));
    }

  }

  function showHistory(items) {
    document.getElementById("history-empty").hidden = items.length > 0;
    document.getElementById("history").replaceChildren(...items.map((r) => h("tr", {},
      h("td", { text: when(r.created) }),
      h("td", { text: r.task + (r.backbone ? ` · ${r.backbone}` : "") }),
      h("td", {}, h("span", { class: "pill " + stateClass(r.state), text: r.state })),
      h("td", { text: r.headline !== null ? `${r.metric} ${fmt(r.headline)}` : "–" }),
      h("td", { title: r.version || "", text: r.display_name || r.version || "–" }),
      h("td", { class: "muted", text: r.decision || r.error || "" }),
    )));
  }

  async function refresh() {
    try {
      overview = await api("GET", "/api/v1/training");
    } catch (err) { toast(`Training status: ${err.message}`, "error"); return; }
    if (!form.deploy_threshold.value) form.deploy_threshold.value = overview.deploy_threshold;
    showCurrent(overview.current);
    const latest = overview.current || overview.items[0];
    if (latest && !ACTIVE.has(latest.state)) await showResult(latest);
    showHistory(overview.items);
    updateButton();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { task: form.task.value, source: form.source.value };
    if (form.backbone.value) body.backbone = form.backbone.value;
    if (form.epochs.value) body.epochs = Number(form.epochs.value);
    if (form.deploy_threshold.value) body.deploy_threshold = Number(form.deploy_threshold.value);
    trainBtn.disabled = true;
    try {
      const run = await api("POST", "/api/v1/training", body);
      toast(`Training started (${run.id})`, "ok");
    } catch (err) { toast(`Training not started: ${err.message}`, "error"); }
    await refresh();
  });
  form.task.addEventListener("change", loadSummary);
  document.getElementById("cancel").addEventListener("click", async () => {
    if (!overview || !overview.current) return;
    try { await api("POST", `/api/v1/training/${encodeURIComponent(overview.current.id)}/cancel`); toast("Cancelling…"); }
    catch (err) { toast(err.message, "error"); }
    await refresh();
  });

  // Only the backbones the trainer can train with its weights (the default first).
  api("GET", "/api/v1/training/backbones").then((b) => {
    const sel = document.getElementById("backbone");
    const opts = [h("option", { value: "", text: b.default ? `trainer default (${b.default})` : "trainer default" })];
    for (const name of b.usable) if (name !== b.default) opts.push(h("option", { value: name, text: name }));
    sel.replaceChildren(...opts);
  }).catch(() => {});

  loadSummary().catch((err) => toast(err.message, "error"));
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 3000);
})();
