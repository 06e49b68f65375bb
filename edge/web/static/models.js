/* Models page: the project's versions by name (`Shelf rows v3 · date`), activate and roll back after a confirmation,
   upload a bundle, try Predict. */
"use strict";
(() => {
  const { api, toast, h } = SW;
  let payload = null;

  const metricText = (m) => Object.entries(m || {}).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(" · ");

  async function load() {
    const data = await api("GET", "/api/v1/models");
    payload = data;
    const refusal = document.getElementById("refusal");
    refusal.hidden = !data.last_refusal;
    if (data.last_refusal) refusal.textContent = `Last refused bundle (${data.last_refusal.source}, ${data.last_refusal.at}): ${data.last_refusal.reason}`;
    document.getElementById("models-empty").hidden = data.items.length > 0;
    document.getElementById("rollback").disabled = !data.previous;
    document.getElementById("rollback").title = data.previous ? `Go back to ${data.previous_name || data.previous}` : "No previous version";
    document.getElementById("running").textContent = data.active ? `Running: ${data.active_name || data.active}` : "No model running";
    document.getElementById("model-rows").replaceChildren(...data.items.map((m) => {
      const state = m.status !== "ok" ? h("span", { class: "pill bad", title: m.reason || "", text: "refused" })
        : m.active ? h("span", { class: "pill ok", text: "active" }) : m.previous ? h("span", { class: "pill", text: "previous" }) : h("span", { class: "muted", text: "installed" });
      const act = m.status === "ok" && !m.active ? h("button", { class: "btn small", type: "button", text: "Activate", onclick: () => activate(m) }) : null;
      const report = m.status === "ok" ? h("a", { href: `/models/${encodeURIComponent(m.version)}/report`, text: "report" }) : null;
      return h("tr", { "data-version": m.version },
        h("td", {}, h("b", { text: m.display_name || m.version }), h("div", { class: "muted stat", text: m.version })),
        h("td", { text: m.task || "–" }),
        h("td", { text: (m.labels || []).join(", ") }),
        h("td", { class: "stat", text: metricText(m.metrics) }),
        h("td", { class: "stat", text: m.installed.replace("T", " ").replace("Z", "") }),
        h("td", {}, state, m.reason ? h("div", { class: "muted", text: m.reason }) : null),
        h("td", {}, act, " ", report));
    }));
  }

  async function activate(m) {
    const running = payload && payload.active ? (payload.active_name || payload.active) : "no model";
    const ok = await STUDIO.ask(`Activate ${m.display_name || m.version}?`,
      `Every camera switches to it now, without a restart (running now: ${running}). Roll back returns to the running one.`, "Activate");
    if (!ok) return;
    try { const d = await api("POST", `/api/v1/models/${encodeURIComponent(m.version)}/activate`); toast(`Activated ${d.active_name || m.version}`, "ok"); }
    catch (err) { toast(err.message, "error"); }
    load();
  }

  document.getElementById("rollback").addEventListener("click", async () => {
    if (!payload || !payload.previous) return;
    const ok = await STUDIO.ask(`Roll back to ${payload.previous_name || payload.previous}?`,
      `Every camera goes back to it now; ${payload.active_name || payload.active || "the running model"} stays installed (roll back again to return).`, "Roll back");
    if (!ok) return;
    try { const d = await api("POST", "/api/v1/models/rollback"); toast(`Rolled back to ${d.active_name || d.active}`, "ok"); }
    catch (err) { toast(err.message, "error"); }
    load();
  });

  document.getElementById("upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(ev.target);
    try { const d = await api("POST", "/api/v1/models", fd); toast(`Installed ${d.version}${d.activated ? " and activated it" : ""}`, "ok"); ev.target.reset(); }
    catch (err) { toast(err.message, "error"); }
    load();
  });

  document.getElementById("predict-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("predict-out");
    try {
      const answer = await api("POST", "/api/v1/predict", new FormData(ev.target));
      out.textContent = JSON.stringify(answer, null, 2);
      // predict.js draws the answer on the image.
      window.dispatchEvent(new CustomEvent("sw:predicted", { detail: { answer, file: ev.target.file.files[0] } }));
    } catch (err) { out.textContent = err.message; }
  });

  load().catch((err) => toast(err.message, "error"));
})();
