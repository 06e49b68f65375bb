/* Status page: device (uptime people read), model, MQTT, cameras with camera/evaluated fps, skipped frames per second
   (by design) vs lost ones (failed evaluations), the last inference time and zone states; refreshes itself. */
"use strict";
(() => {
  const { api, toast, h } = SW;
  const kv = (el, pairs) => el.replaceChildren(...pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v === null || v === undefined ? "–" : String(v) })]));
  const num = (v, digits = 1) => (typeof v === "number" ? v.toFixed(digits) : "–");
  const zoneClass = (s) => (s === "low_stock" ? "bad" : s === "ok" ? "ok" : "warn");

  async function load() {
    let s;
    try { s = await api("GET", "/api/v1/status"); } catch (err) { toast(err.message, "error"); return; }
    const health = document.getElementById("health");
    health.textContent = s.healthy === true ? "healthy" : s.healthy === false ? "unhealthy" : s.runtime;
    health.className = "pill " + (s.healthy === true ? "ok" : s.healthy === false ? "bad" : "warn");
    kv(document.getElementById("device-kv"), [
      ["Device", s.device],
      ["Uptime", typeof s.uptime === "number" ? SW.duration(s.uptime) : null],
      ["MQTT", s.mqtt.enabled ? (s.mqtt.connected ? "connected" : "disconnected") : "disabled"],
      ["Outbox", s.mqtt.outbox],
      ["Events", s.events],
      ["Training", s.training ? `${s.training.state} (${s.training.id})` : "idle"],
    ]);
    kv(document.getElementById("model-kv"), [
      ["Model", s.model ? `${s.model.name} ${s.model.version}` : "none active"],
      ["Task", s.model && s.model.task],
      ["Engine", s.model && s.model.engine],
      ["Load error", s.model_error],
      ["Last refusal", s.last_refusal ? `${s.last_refusal.source}: ${s.last_refusal.reason}` : null],
    ]);
    document.getElementById("cameras-empty").hidden = s.cameras.length > 0;
    document.getElementById("camera-rows").replaceChildren(...s.cameras.map((c) => {
      const cap = c.capture || {};
      const p = c.pipeline || {};
      const zones = Object.entries(c.zones || {}).map(([z, st]) => h("span", { class: "pill zone-state " + zoneClass(st.state), title: `score ${st.score}`, text: `${z}: ${st.state}` }));
      return h("tr", {},
        h("td", { text: c.id }),
        h("td", {}, h("span", { class: "pill " + (cap.state === "online" ? "ok" : "bad"), text: cap.state || "–" }), cap.last_error ? h("div", { class: "muted", text: cap.last_error }) : null),
        h("td", { class: "stat", text: num(cap.fps) }),
        h("td", { class: "stat", text: c.pipeline ? `${num(p.evaluated_fps)}${p.configured_fps ? ` of ${p.configured_fps}` : ""}` : "not evaluated" }),
        h("td", { class: "stat", title: `${p.skipped ?? 0} skipped since start (the camera delivers more than is evaluated)`, text: c.pipeline ? num(p.skipped_fps) : "–" }),
        h("td", { class: "stat", title: p.last_error || "no failed evaluation", text: c.pipeline ? String(p.errors ?? 0) : "–" }),
        h("td", { class: "stat", text: c.pipeline && p.evaluated ? num(p.inference_ms) : "–" }),
        h("td", {}, ...zones));
    }));
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 3000);
})();
