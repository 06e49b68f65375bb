/* Models page: installed versions with metrics, activate, roll back, upload a bundle, try Predict. */
"use strict";
(() => {
  const { api, toast, h } = SW;
  const metricText = (m) => Object.entries(m || {}).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(" · ");

  async function load() {
    const data = await api("GET", "/api/v1/models");
    const refusal = document.getElementById("refusal");
    refusal.hidden = !data.last_refusal;
    if (data.last_refusal) refusal.textContent = `Last refused bundle (${data.last_refusal.source}, ${data.last_refusal.at}): ${data.last_refusal.reason}`;
    document.getElementById("models-empty").hidden = data.items.length > 0;
    document.getElementById("rollback").disabled = !data.previous;
    document.getElementById("rollback").title = data.previous ? `Go back to ${data.previous}` : "No previous version";
    document.getElementById("model-rows").replaceChildren(...data.items.map((m) => {
      const state = m.status !== "ok" ? h("span", { class: "pill bad", title: m.reason || "", text: "refused" })
        : m.active ? h("span", { class: "pill ok", text: "active" }) : m.previous ? h("span", { class: "pill", text: "previous" }) : h("span", { class: "muted", text: "installed" });
      const act = m.status === "ok" && !m.active ? h("button", { class: "btn small", type: "button", text: "Activate", onclick: () => activate(m.version) }) : null;
      const report = m.status === "ok" ? h("a", { href: `/api/v1/models/${encodeURIComponent(m.version)}/files/report.html`, target: "_blank", text: "report" }) : null;
      return h("tr", {},
        h("td", {}, h("b", { text: m.version }), h("div", { class: "muted", text: m.name || "" })),
        h("td", { text: m.task || "–" }),
        h("td", { text: (m.labels || []).join(", ") }),
        h("td", { class: "stat", text: metricText(m.metrics) }),
        h("td", { class: "stat", text: m.installed.replace("T", " ").replace("Z", "") }),
        h("td", {}, state, m.reason ? h("div", { class: "muted", text: m.reason }) : null),
        h("td", {}, act, " ", report));
    }));
  }

  async function activate(version) {
    try { await api("POST", `/api/v1/models/${encodeURIComponent(version)}/activate`); toast(`Activated ${version}`, "ok"); }
    catch (err) { toast(err.message, "error"); }
    load();
  }

  document.getElementById("rollback").addEventListener("click", async () => {
    try { const d = await api("POST", "/api/v1/models/rollback"); toast(`Rolled back to ${d.active}`, "ok"); }
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
