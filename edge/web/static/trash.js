/* Trash: what was deleted (a label with its tags and boxes, images), restore or remove for good. */
"use strict";
(() => {
  const { api, toast, h } = SW;
  async function load() {
    const data = await api("GET", "/api/v1/trash");
    document.getElementById("trash-empty").hidden = data.items.length > 0;
    document.getElementById("trash-rows").replaceChildren(...data.items.map((e) => h("tr", { "data-entry": e.id },
      h("td", { class: "stat", text: (e.created || "").replace("T", " ").replace("Z", "") }),
      h("td", { text: e.summary }),
      h("td", {},
        h("button", { type: "button", class: "btn small primary", text: "Restore", onclick: () => restore(e) }), " ",
        h("button", { type: "button", class: "btn small danger", text: "Delete for good", onclick: () => purge(e) })))));
  }
  async function restore(e) {
    try { const r = await api("POST", `/api/v1/trash/${encodeURIComponent(e.id)}/restore`); toast(`Restored ${r.restored}`, "ok"); }
    catch (err) { toast(err.message, "error"); }
    load();
  }
  async function purge(e) {
    if (!(await STUDIO.ask(`Delete ${e.summary} for good?`, "It cannot come back after this.", "Delete for good"))) return;
    try { await api("DELETE", `/api/v1/trash/${encodeURIComponent(e.id)}`); toast("Removed for good", "ok"); }
    catch (err) { toast(err.message, "error"); }
    load();
  }
  load().catch((err) => toast(err.message, "error"));
})();
