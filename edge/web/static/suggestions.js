/* Model suggestions on the tagging page: the active version's tags and boxes for the open image, drawn dashed
   with their score over tag.js's canvas (its `sw:tag-draw` event), each label's similarity to labelled examples
   (per image, and per box when the bundle embeds boxes), accept (A, or Enter = accept and next), reject (X),
   edit-then-accept (E: the suggestion becomes ordinary unsaved boxes/tags to move, resize or relabel; A or Enter
   saves them as edited, X drops them), and "accept all above t" over every untagged image with the count it will
   accept. A suggestion becomes an annotation only by these actions (the accept API, or saving the edit). */
"use strict";
(() => {
  const data = SW.pageData("tag-data");
  if (!data || data.image_id === null || !window.SWTag) return;
  const aside = document.querySelector(".tagger .side");
  const state = { id: null, sug: null, decided: new Set(), t: null, editing: null };

  const panel = SW.h("section", { class: "panel", id: "suggestions", hidden: true });
  aside.prepend(panel);

  const editing = () => state.sug && state.editing === state.id;
  const pending = () => state.sug && !state.decided.has(state.id) && !editing()
    && (state.sug.tags.length || state.sug.boxes.length);
  const threshold = () => (state.t === null ? (state.sug ? state.sug.threshold : 0.5) : state.t);

  function render() {
    const s = state.sug;
    if (!s) { panel.hidden = true; return; }
    panel.hidden = false;
    const decided = state.decided.has(state.id);
    const sim = s.similar || {};
    const rows = s.tags.slice(0, 5).map((t) => SW.h("tr", {},
      SW.h("td", { text: t.label }),
      SW.h("td", { class: "num", text: t.score.toFixed(2) }),
      SW.h("td", { class: "num muted", title: "similarity to this label's labelled examples",
        text: sim[t.label] !== undefined ? `≈ ${sim[t.label].toFixed(2)}` : "" })));
    const t = threshold();
    const above = s.boxes.filter((b) => b.score >= t);
    const boxRows = above.slice(0, 8).map((b) => {
      const best = Object.entries(b.similar || {}).sort((x, y) => y[1] - x[1])[0];
      return SW.h("tr", {},
        SW.h("td", { text: b.label }),
        SW.h("td", { class: "num", text: b.score.toFixed(2) }),
        SW.h("td", { class: "num muted", title: "similarity of this box to the boxes labelled " + (best ? best[0] : ""),
          text: b.similar && b.similar[b.label] !== undefined ? `≈ ${b.similar[b.label].toFixed(2)}` : "" }));
    });
    const slider = SW.h("input", { type: "range", id: "sug-threshold", min: "0", max: "1", step: "0.05", value: String(t),
      "aria-label": "Accept all above this score" });
    const count = SW.h("span", { id: "sug-count", class: "muted", text: "…" });
    const bulk = SW.h("button", { type: "button", class: "btn small", id: "sug-accept-all", text: `Accept all above ${t.toFixed(2)}` });
    slider.addEventListener("input", () => { state.t = Number(slider.value); bulk.textContent = `Accept all above ${state.t.toFixed(2)}`; refreshCount(); });
    bulk.addEventListener("click", acceptAll);
    panel.replaceChildren(...[
      SW.h("div", { class: "row" }, SW.h("h2", { text: "Suggestions" }), SW.h("span", { class: "spacer" }),
        SW.h("span", { class: "pill", text: `model v${s.model.number ?? "?"}` })),
      s.tags.length ? SW.h("table", { class: "list", id: "sug-tags" }, ...rows) : null,
      s.boxes.length ? SW.h("p", { id: "sug-boxes", text: `${above.length} of ${s.boxes.length} boxes score ≥ ${t.toFixed(2)} (dashed)` }) : null,
      boxRows.length ? SW.h("table", { class: "list", id: "sug-box-list" }, ...boxRows) : null,
      editing() ? SW.h("div", {},
        SW.h("p", { id: "sug-editing", class: "muted", text: "Editing the suggestion: move, resize or relabel it, then accept it as edited (A; Enter: and next), or drop it (X)." }),
        SW.h("div", { class: "row" },
          SW.h("button", { type: "button", class: "btn small primary", id: "sug-accept-edited", text: "Accept edited" }),
          SW.h("button", { type: "button", class: "btn small", id: "sug-drop", text: "Drop" })))
        : decided ? SW.h("p", { class: "muted", text: "Decided for this image." })
        : SW.h("div", { class: "row" },
          SW.h("button", { type: "button", class: "btn small primary", id: "sug-accept", title: "Accept (A; Enter: accept and next)", text: "Accept" }),
          SW.h("button", { type: "button", class: "btn small", id: "sug-edit", title: "Edit, then accept (E)", text: "Edit" }),
          SW.h("button", { type: "button", class: "btn small", id: "sug-reject", title: "Reject (X)", text: "Reject" })),
      SW.h("div", { class: "row" }, slider, bulk, count),
    ].filter(Boolean));
    const a = document.getElementById("sug-accept");
    if (a) a.addEventListener("click", () => accept(false));
    const r = document.getElementById("sug-reject");
    if (r) r.addEventListener("click", reject);
    const e = document.getElementById("sug-edit");
    if (e) e.addEventListener("click", edit);
    const ae = document.getElementById("sug-accept-edited");
    if (ae) ae.addEventListener("click", () => acceptEdited(false));
    const dr = document.getElementById("sug-drop");
    if (dr) dr.addEventListener("click", dropEdited);
    refreshCount();
  }

  async function refreshCount() {
    try {
      const res = await SW.api("GET", `/api/v1/suggestions?min_score=${threshold()}`);
      const el = document.getElementById("sug-count");
      if (el) { el.textContent = `${res.above} untagged image${res.above === 1 ? "" : "s"}`; el.dataset.count = String(res.above); }
    } catch (err) { /* no active version: the panel is hidden anyway */ }
  }

  async function load(id) {
    if (state.editing !== id) state.editing = null; // leaving an image drops an edit not accepted
    state.id = id;
    state.sug = null;
    try {
      state.sug = await SW.api("GET", `/api/v1/images/${id}/suggestions`);
    } catch (err) {
      if (err.status !== 404) SW.toast(err.message, "error");
    }
    render();
    window.SWTag.redraw();
  }

  async function accept(andNext) {
    if (!pending()) return;
    if (window.SWTag.dirty() && !confirm("Accepting saves the suggestion; discard your unsaved changes?")) return;
    const t = threshold();
    const body = state.sug.boxes.length ? { boxes: "all", min_score: t } : { tags: [state.sug.tags[0].label] };
    try {
      const res = await SW.api("POST", `/api/v1/images/${state.id}/suggestions/accept`, body);
      state.decided.add(state.id);
      SW.toast(`Accepted ${res.accepted.tags} tag(s), ${res.accepted.boxes} box(es)`, "ok");
      await window.SWTag.reload();
      if (andNext) document.getElementById("save-next").click();
    } catch (err) { SW.toast(err.message, "error"); }
  }

  function reject() {
    if (!pending()) return;
    state.decided.add(state.id);
    render();
    window.SWTag.redraw();
  }

  // Edit-then-accept: what "Accept" would take (boxes >= t, else the best tag) goes into tag.js's editor.
  function edit() {
    if (!pending()) return;
    const t = threshold();
    const boxes = state.sug.boxes.filter((b) => b.score >= t).map(({ label, x1, y1, x2, y2 }) => ({ label, x1, y1, x2, y2 }));
    const tags = state.sug.boxes.length || !state.sug.tags.length ? [] : [state.sug.tags[0].label];
    if (!boxes.length && !tags.length) { SW.toast(`No suggested box scores ≥ ${t.toFixed(2)}: lower the slider`); return; }
    window.SWTag.take({ tags, boxes });
    state.editing = state.id;
    render();
  }

  async function acceptEdited(andNext) {
    if (!editing()) return;
    const id = state.id;
    if (andNext) {
      state.decided.add(id); state.editing = null;
      document.getElementById("save-next").click(); // saves, then the next image
      return;
    }
    if (await window.SWTag.save()) { state.decided.add(id); state.editing = null; render(); }
  }

  function dropEdited() {
    if (!editing()) return;
    window.SWTag.revert();
    state.decided.add(state.id);
    state.editing = null;
    render();
    window.SWTag.redraw();
  }

  async function acceptAll() {
    const t = threshold();
    try {
      const res = await SW.api("POST", "/api/v1/suggestions/accept", { min_score: t });
      SW.toast(`Accepted suggestions on ${res.images} image(s) above ${t.toFixed(2)}`, "ok");
      await window.SWTag.reload();
      refreshCount();
    } catch (err) { SW.toast(err.message, "error"); }
  }

  document.addEventListener("sw:tag-open", (ev) => load(ev.detail.id));
  document.addEventListener("sw:tag-draw", (ev) => {
    if (!pending() || !state.sug.boxes.length) return;
    const { ctx, W, H, dpr } = ev.detail;
    ctx.save();
    ctx.setLineDash([6 * dpr, 4 * dpr]);
    ctx.lineWidth = 2 * dpr;
    ctx.font = `600 ${11 * dpr}px system-ui, sans-serif`;
    for (const b of state.sug.boxes) {
      if (b.score < threshold()) continue;
      const x = b.x1 * W, y = b.y1 * H, w = (b.x2 - b.x1) * W, h = (b.y2 - b.y1) * H;
      ctx.strokeStyle = "#f5a623";
      ctx.strokeRect(x, y, w, h);
      ctx.fillStyle = "#f5a623";
      ctx.fillText(`${b.label} ${b.score.toFixed(2)}`, x + 3 * dpr, y + h - 4 * dpr);
    }
    ctx.restore();
  });
  // Capture phase: while a suggestion waits for a decision, A / Enter / X belong to it (tag.js keeps them otherwise).
  document.addEventListener("keydown", (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !(pending() || editing())) return;
    const key = ev.key.toLowerCase();
    const own = () => { ev.preventDefault(); ev.stopImmediatePropagation(); };
    if (editing()) {
      if (key === "a" || key === "enter") { own(); acceptEdited(key === "enter"); }
      else if (key === "x") { own(); dropEdited(); }
      return; // the editor's keys (digits relabel the selected box, Delete, arrows...) work as usual
    }
    if (key === "a" || key === "enter") { own(); accept(key === "enter"); }
    else if (key === "e") { own(); edit(); }
    else if (key === "x") { own(); reject(); }
  }, true);
})();
