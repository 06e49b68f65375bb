/* Events page: newest first with snapshot thumbnails, filters by camera/zone/phase, pages. */
"use strict";
(() => {
  const { api, toast, h } = SW;
  const form = document.getElementById("filters");
  let page = 1;
  const PAGE_SIZE = 24;

  async function load() {
    const q = new URLSearchParams({ page, page_size: PAGE_SIZE });
    for (const k of ["camera", "zone", "phase"]) if (form[k].value) q.set(k, form[k].value);
    let data;
    try { data = await api("GET", `/api/v1/events?${q}`); } catch (err) { toast(err.message, "error"); return; }
    document.getElementById("events-empty").hidden = data.items.length > 0;
    document.getElementById("events").replaceChildren(...data.items.map((e) => h("div", { class: "tile event-tile" },
      e.has_snapshot ? h("a", { class: "thumb", href: e.snapshot, target: "_blank" }, h("img", { src: e.snapshot, alt: `snapshot of ${e.zone}`, loading: "lazy" })) : h("div", { class: "thumb empty", text: "no snapshot" }),
      h("div", { class: "meta" },
        h("span", { class: "pill " + (e.phase === "start" ? "bad" : "ok"), text: e.phase }),
        h("b", { text: `${e.camera} / ${e.zone}` }),
        h("span", { class: "stat", text: `${e.label || ""} ${typeof e.score === "number" ? e.score.toFixed(2) : ""}` }),
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
