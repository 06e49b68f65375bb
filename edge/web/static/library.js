/* Library: paged grid with filters, thumbnails showing their boxes and tags, upload (picker or drop), selection,
   bulk tag, bulk delete and split. */
"use strict";
(() => {
  const PAGE_SIZE = 48;
  const state = { page: 1, tagged: "", label: "", split: "", total: 0, selected: new Set(), items: [] };
  const grid = document.getElementById("grid");
  const empty = document.getElementById("grid-empty");
  const bulkDelete = document.getElementById("bulk-delete");
  const bulkSplit = document.getElementById("bulk-split");
  const selectAll = document.getElementById("select-all");
  const bulkTag = document.getElementById("bulk-tag");
  const bulkTagLabel = document.getElementById("bulk-tag-label");
  // Boxes on thumbnails take their label's colour, as on the Tag page.
  const colours = new Map();
  const coloursReady = SW.api("GET", "/api/v1/labels")
    .then((res) => { for (const l of res.items) colours.set(l.name, l.color); })
    .catch(() => {});
  const params = new URLSearchParams(location.search);
  state.tagged = params.get("tagged") || "";
  state.label = params.get("label") || "";
  state.page = Number(params.get("page") || 1);
  document.getElementById("filter-label").value = state.label;

  function syncSelection() {
    const n = state.selected.size;
    bulkDelete.disabled = n === 0;
    bulkSplit.disabled = n === 0;
    bulkTag.disabled = n === 0 || !bulkTagLabel.options.length;
    bulkTagLabel.disabled = n === 0 || !bulkTagLabel.options.length;
    bulkTag.textContent = n ? `Tag ${n} selected` : "Tag selected";
    bulkDelete.textContent = n ? `Delete ${n} selected` : "Delete selected";
    selectAll.checked = state.items.length > 0 && state.items.every((it) => state.selected.has(it.id));
  }

  /** The image's boxes drawn over its thumbnail (an SVG in image pixels; meet = the thumbnail's object-fit: contain). */
  function boxOverlay(item) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("class", "boxes");
    svg.setAttribute("viewBox", `0 0 ${item.width} ${item.height}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    svg.setAttribute("aria-hidden", "true");
    for (const b of item.boxes) {
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", b.x1 * item.width); r.setAttribute("y", b.y1 * item.height);
      r.setAttribute("width", (b.x2 - b.x1) * item.width); r.setAttribute("height", (b.y2 - b.y1) * item.height);
      r.setAttribute("fill", "none"); r.setAttribute("stroke", SW.colorFor(b.label, colours.get(b.label)));
      r.setAttribute("stroke-width", Math.max(2, item.width / 120));
      svg.append(r);
    }
    return svg;
  }

  function tile(item) {
    const chips = [...item.tags.map((t) => SW.h("span", { class: "pill", text: t })),
      ...(item.boxes.length ? [SW.h("span", { class: "pill warn", text: `${item.boxes.length} box${item.boxes.length > 1 ? "es" : ""}` })] : [])];
    if (!item.tagged) chips.push(SW.h("span", { class: "muted", text: "untagged" }));
    if (item.inbox_reason) chips.push(SW.h("span", { class: "pill inbox", title: item.inbox_reason, text: item.inbox_reason }));
    const pick = SW.h("input", { type: "checkbox", class: "pick", "aria-label": `Select image ${item.id}` });
    pick.checked = state.selected.has(item.id);
    const el = SW.h("figure", { class: "tile" + (pick.checked ? " selected" : ""), "data-id": item.id },
      SW.h("a", { class: "thumb", href: `/tag/${item.id}`, title: item.filename || `image ${item.id}` },
        SW.h("img", { src: `/api/v1/images/${item.id}/thumb.jpg`, alt: item.filename || `image ${item.id}`, loading: "lazy", class: item.boxes.length ? "fit" : "" }),
        item.boxes.length && item.width ? boxOverlay(item) : null),
      pick,
      item.split !== "auto" ? SW.h("span", { class: "split", text: item.split }) : null,
      SW.h("figcaption", { class: "meta" }, SW.h("span", { class: "muted", text: `#${item.id}` }), ...chips));
    el.style.margin = "0";
    pick.addEventListener("change", () => {
      if (pick.checked) state.selected.add(item.id); else state.selected.delete(item.id);
      el.classList.toggle("selected", pick.checked);
      syncSelection();
    });
    return el;
  }

  async function load() {
    await coloursReady;
    const q = new URLSearchParams({ page: state.page, page_size: PAGE_SIZE });
    if (state.tagged) q.set("tagged", state.tagged);
    if (state.label) q.set("label", state.label);
    if (state.split) q.set("split", state.split);
    for (const k of ["inbox", "order"]) if (params.get(k)) q.set(k, params.get(k)); // assist-library.js views
    try {
      const data = await SW.api("GET", `/api/v1/images?${q}`);
      state.total = data.total;
      state.items = data.items;
      grid.replaceChildren(...data.items.map(tile));
      empty.hidden = data.items.length > 0;
      const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
      document.getElementById("page-info").textContent = `Page ${state.page} of ${pages}`;
      document.getElementById("prev-page").disabled = state.page <= 1;
      document.getElementById("next-page").disabled = state.page >= pages;
      document.getElementById("lib-total").textContent = `${data.total} image${data.total === 1 ? "" : "s"}`;
      syncSelection();
    } catch (err) {
      SW.toast(err.message, "error");
    }
  }

  for (const btn of document.querySelectorAll(".seg button")) {
    btn.classList.toggle("active", btn.dataset.tagged === state.tagged);
    btn.addEventListener("click", () => {
      document.querySelectorAll(".seg button").forEach((b) => b.classList.toggle("active", b === btn));
      state.tagged = btn.dataset.tagged; state.page = 1; load();
    });
  }
  document.getElementById("filter-label").addEventListener("change", (ev) => { state.label = ev.target.value; state.page = 1; load(); });
  document.getElementById("filter-split").addEventListener("change", (ev) => { state.split = ev.target.value; state.page = 1; load(); });
  document.getElementById("prev-page").addEventListener("click", () => { state.page -= 1; load(); });
  document.getElementById("next-page").addEventListener("click", () => { state.page += 1; load(); });
  selectAll.addEventListener("change", () => {
    for (const it of state.items) { if (selectAll.checked) state.selected.add(it.id); else state.selected.delete(it.id); }
    grid.querySelectorAll(".tile").forEach((t) => { const on = state.selected.has(Number(t.dataset.id)); t.classList.toggle("selected", on); t.querySelector(".pick").checked = on; });
    syncSelection();
  });

  bulkDelete.addEventListener("click", async () => {
    const ids = [...state.selected];
    if (!(await STUDIO.ask(`Delete ${ids.length} image(s)?`, "Their tags and boxes go with them. You can undo this, or restore them from the Trash.", "Delete"))) return;
    try {
      const res = await SW.api("POST", "/api/v1/images/delete", { ids });
      STUDIO.undoToast(`Deleted ${res.deleted} image(s).`, res.trash, () => load());
      state.selected.clear();
      load();
    } catch (err) { SW.toast(err.message, "error"); }
  });
  bulkTag.addEventListener("click", async () => {
    const tag = bulkTagLabel.value;
    const ids = [...state.selected];
    if (!tag || !ids.length) return;
    bulkTag.disabled = true;
    let done = 0;
    try {
      // One image after the other: each keeps its boxes and other tags, and gains this one.
      for (const id of ids) {
        const ann = await SW.api("GET", `/api/v1/images/${id}/annotations`);
        if (!ann.tags.includes(tag)) await SW.api("PUT", `/api/v1/images/${id}/annotations`, { tags: [...ann.tags, tag], boxes: ann.boxes });
        done += 1;
      }
      SW.toast(`Tagged ${done} image(s) as ${tag}`, "ok");
      state.selected.clear();
    } catch (err) {
      SW.toast(`Tagged ${done} of ${ids.length}; stopped: ${err.message}`, "error");
    }
    load();
  });

  bulkSplit.addEventListener("change", async () => {
    const split = bulkSplit.value;
    if (!split) return;
    try {
      await SW.api("POST", "/api/v1/images/split", { ids: [...state.selected], split });
      SW.toast(`Moved ${state.selected.size} image(s) to ${split}`, "ok");
      state.selected.clear();
      bulkSplit.value = "";
      load();
    } catch (err) { SW.toast(err.message, "error"); }
  });

  async function upload(files) {
    if (!files.length) return;
    const form = new FormData();
    for (const f of files) form.append("file", f, f.name);
    try {
      const res = await SW.api("POST", "/api/v1/images", form);
      const dup = res.items.length - res.stored;
      SW.toast(`Added ${res.stored} image(s)` + (dup ? `, ${dup} already in the dataset` : ""), "ok");
      state.page = 1;
      load();
    } catch (err) {
      SW.toast(`Nothing uploaded: ${err.message}`, "error");
    }
  }
  document.getElementById("upload-input").addEventListener("change", (ev) => { upload([...ev.target.files]); ev.target.value = ""; });
  const drop = document.getElementById("dropzone");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); upload([...ev.dataTransfer.files]); });

  load();
})();
