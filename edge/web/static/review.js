/* Review: per-label bar chart against the minimum, readiness verdict with reasons, splits, import, Train. */
"use strict";
(() => {
  const page = SW.pageData("review-data");
  const train = document.getElementById("train");
  let summary = null;

  function render(s) {
    summary = s;
    document.getElementById("task").value = s.task_setting;
    document.getElementById("n-images").textContent = s.images;
    document.getElementById("n-tagged").textContent = s.tagged;
    document.getElementById("n-boxes").textContent = s.boxes;
    document.getElementById("chart-title").textContent = `${{ boxes: "Boxes", crops: `Zone crops (${s.zones} zones)`, images: "Tagged images" }[s.unit] || "Tagged images"} per label (${s.task})`;
    const verdict = document.getElementById("verdict");
    verdict.className = "verdict " + (s.ready ? "ready" : "notready");
    document.getElementById("verdict-title").textContent = s.ready
      ? `Ready to train: ${s.tagged} tagged images, ${Object.keys(s.per_label).length} labels`
      : "Not ready to train yet";
    document.getElementById("problems").replaceChildren(...s.problems.map((p) => SW.h("li", { text: p })));
    document.getElementById("warnings").replaceChildren(...s.warnings.map((w) => SW.h("li", { text: "⚠ " + w })));

    const entries = Object.entries(s.per_label);
    document.getElementById("no-labels").hidden = entries.length > 0;
    const max = Math.max(s.min_per_label, ...entries.map(([, c]) => c[s.unit]));
    document.getElementById("bars").replaceChildren(...entries.map(([name, c]) => {
      const n = c[s.unit];
      const fill = SW.h("div", { class: "fill" });
      fill.style.width = `${(100 * n) / max}%`;
      fill.style.background = n >= s.min_per_label ? "var(--ok)" : "var(--warn)";
      const need = SW.h("div", { class: "need", title: `minimum ${s.min_per_label}` });
      need.style.left = `${(100 * s.min_per_label) / max}%`;
      return SW.h("div", { class: "bar", "data-label": name, title: `${n} ${s.unit}; ${s.min_per_label} needed` },
        SW.h("span", { class: "name", text: name }), SW.h("div", { class: "track" }, fill, need), SW.h("span", { class: "n", text: n }));
    }));
    document.getElementById("untagged-hint").hidden = !s.untagged;
    document.getElementById("untagged-link").textContent = `Tag the ${s.untagged} untagged image${s.untagged === 1 ? "" : "s"} →`;
    const sp = s.splits;
    document.getElementById("splits").textContent = `train ${sp.train} · val ${sp.val} · test ${sp.test} · not assigned ${sp.auto}`;

    const reason = document.getElementById("train-reason");
    if (!s.ready) {
      train.disabled = true;
      train.title = s.problems.join("\n");
      reason.textContent = `Disabled: ${s.problems.length} problem${s.problems.length > 1 ? "s" : ""} to fix first`;
    } else if (!page.training_url || !s.training_available) {
      train.disabled = true;
      train.title = "The dataset is ready, but no training service is connected to this device (trainer.url in edge.yaml).";
      reason.textContent = "Disabled: no training service connected (trainer.url)";
    } else {
      train.disabled = false;
      train.title = "Start training on the trainer service";
      reason.textContent = "";
    }
  }

  async function load() {
    try { render(await SW.api("GET", "/api/v1/dataset/summary")); } catch (err) { SW.toast(err.message, "error"); }
  }

  document.getElementById("task").addEventListener("change", async (ev) => {
    try { render(await SW.api("PUT", "/api/v1/dataset/task", { task: ev.target.value })); } catch (err) { SW.toast(err.message, "error"); }
  });
  document.getElementById("auto-split").addEventListener("click", async () => {
    try {
      const res = await SW.api("POST", "/api/v1/dataset/split", { test_fraction: 0.2, reassign: document.getElementById("reassign").checked });
      SW.toast(`Assigned: ${Object.entries(res.assigned).map(([k, v]) => `${k} ${v}`).join(", ") || "nothing to assign"}`, "ok");
      render(res.summary);
    } catch (err) { SW.toast(err.message, "error"); }
  });
  document.getElementById("import-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    try {
      const res = await SW.api("POST", "/api/v1/dataset/import", form);
      const st = res.imported;
      SW.toast(`Imported ${st.images} images (${res.format}), ${st.duplicates} already present, ${st.labels} new labels`, "ok");
      render(res.summary);
      ev.target.reset();
    } catch (err) { SW.toast(`Nothing imported: ${err.message}`, "error"); }
  });
  train.addEventListener("click", async () => {
    if (!page.training_url || !summary || !summary.ready) return;
    train.disabled = true;
    try {
      const res = await SW.api("POST", page.training_url, { task: summary.task });
      SW.toast(`Training started${res && res.id ? ` (run ${res.id})` : ""}`, "ok");
      if (page.progress_url) setTimeout(() => { location.href = page.progress_url; }, 800);
    } catch (err) { SW.toast(`Training not started: ${err.message}`, "error"); }
    finally { train.disabled = false; }
  });
  load();
})();
