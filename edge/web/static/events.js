/* Events page: newest first with (annotated) snapshot thumbnails, an end card shows how long the episode lasted,
   filters list the real cameras and their zones, pages. */
"use strict";
(() => {
  const { api, toast, h } = SW;
  const form = document.getElementById("filters");
  let page = 1;
  const PAGE_SIZE = 24;
  const choices = SW.pageData("events-data") || { cameras: [], zones: {} };

  function fillZones() {
    const cams = form.camera.value ? [form.camera.value] : Object.keys(choices.zones);
    const zones = [...new Set(cams.flatMap((c) => choices.zones[c] || []))].sort();
    const keep = form.zone.value;
    form.zone.replaceChildren(h("option", { value: "", text: "every zone" }), ...zones.map((z) => h("option", { value: z, text: z === "frame" ? "frame (whole frame)" : z })));
    form.zone.value = zones.includes(keep) ? keep : "";
  }
  fillZones();
  form.camera.addEventListener("change", () => { fillZones(); page = 1; load(); });
  form.zone.addEventListener("change", () => { page = 1; load(); });
  form.phase.addEventListener("change", () => { page = 1; load(); });

  function detail(e) {
    if (e.phase === "end") {
      return typeof e.duration_s === "number" ? `low stock for ${SW.duration(e.duration_s, true)}` : "low stock ended";
    }
    return `${e.label || "low stock"} ${typeof e.score === "number" ? e.score.toFixed(2) : ""}`;
  }

  async function load() {
    const q = new URLSearchParams({ page, page_size: PAGE_SIZE });
    for (const k of ["camera", "zone", "phase"]) if (form[k].value) q.set(k, form[k].value);
    let data;
    try { data = await api("GET", `/api/v1/events?${q}`); } catch (err) { toast(err.message, "error"); return; }
    document.getElementById("events-empty").hidden = data.items.length > 0;
    document.getElementById("events").replaceChildren(...data.items.map((e) => h("div", { class: "tile event-tile" },
      e.has_snapshot ? h("a", { class: "thumb", href: e.snapshot, target: "_blank" }, h("img", { src: e.snapshot, alt: `snapshot of ${e.zone}`, loading: "lazy" })) : h("div", { class: "thumb empty", text: "no snapshot" }),
      h("div", { class: "meta" },
        h("span", { class: "pill " + (e.phase === "start" ? "bad" : "ok"), text: e.phase === "start" ? "low stock" : "restocked" }),
        h("b", { text: `${e.camera} / ${e.zone}` }),
        h("span", { class: "stat event-detail", text: detail(e) }),
        h("span", { class: "stat", text: (e.ts || "").replace("T", " ").replace("Z", "") })))));
    const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
    document.getElementById("page-info").textContent = `page ${page} of ${pages} · ${data.total} events`;
    document.getElementById("prev").disabled = page <= 1;
    document.getElementById("next").disabled = page >= pages;
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); page = 1; load(); });
  document.getElementById("prev").addEventListener("click", () => { page = Math.max(1, page - 1); load(); });
  document.getElementById("next").addEventListener("click", () => { page += 1; load(); });
  load();
  setInterval(() => { if (!document.hidden && page === 1) load(); }, 10000);
})();
