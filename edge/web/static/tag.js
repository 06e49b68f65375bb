/* Tagging: whole-image tags and boxes drawn with the mouse (create, move, resize, delete, relabel) on a canvas,
   wheel zoom and pan, undo/redo of every change for the whole session (Ctrl+Z / Ctrl+Shift+Z, per image), copying
   the previous image's boxes (C), a `?` overlay of the keys, an end-of-queue prompt, keyboard shortcuts, and a
   guard against losing unsaved changes. Coordinates are normalised 0..1. */
"use strict";
(() => {
  const data = SW.pageData("tag-data");
  if (!data || data.image_id === null) return;
  const labels = data.labels;
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const HANDLE = 7; // px, half the size of a resize handle
  const MIN_SIZE = 0.01; // smallest box side, normalised
  const state = {
    ids: [], tagged: new Map(), index: 0, id: data.image_id, img: null, rec: null,
    tags: new Set(), boxes: [], saved: "", sel: -1, active: labels.length ? labels[0].name : null,
    mode: localStorage.getItem("sw.tagMode") || "tags", drag: null, hover: null,
    view: { scale: 1, ox: 0, oy: 0 }, last: null, space: false, empty: false, // empty: marked "nothing to box"
  };
  const MAX_ZOOM = 8;
  // Undo/redo stacks per image, kept for the whole session (coming back to an image keeps its history).
  const histories = new Map();
  const history = () => {
    if (!histories.has(state.id)) histories.set(state.id, { undo: [], redo: [] });
    return histories.get(state.id);
  };
  const colorOf = (name) => SW.colorFor(name, (labels.find((l) => l.name === name) || {}).color);
  const snapshot = () => JSON.stringify({ tags: [...state.tags].sort(), boxes: state.boxes, empty: state.empty });
  const isDirty = () => state.rec !== null && snapshot() !== state.saved;

  // ---- drawing ----------------------------------------------------------------------------------------------
  function fitCanvas() {
    if (!state.img) return;
    const stage = document.getElementById("stage");
    const maxW = stage.parentElement.clientWidth;
    const top = stage.getBoundingClientRect().top + window.scrollY;
    const maxH = Math.max(220, window.innerHeight - Math.min(top, 140) - 130);
    const aspect = state.img.naturalWidth / state.img.naturalHeight;
    let w = maxW, hgt = w / aspect;
    if (hgt > maxH && window.innerWidth > 600) { hgt = maxH; w = hgt * aspect; }
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = `${Math.round(w)}px`;
    canvas.style.height = `${Math.round(hgt)}px`;
    stage.style.width = `${Math.round(w)}px`;
    document.querySelector(".navrow").style.width = `${Math.round(w)}px`;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
    draw();
  }

  function draw() {
    const W = canvas.width, H = canvas.height, v = state.view;
    const dpr = (window.devicePixelRatio || 1) / v.scale; // lines, text and handles keep their size when zoomed
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.setTransform(v.scale, 0, 0, v.scale, -v.ox * W * v.scale, -v.oy * H * v.scale);
    if (state.img) ctx.drawImage(state.img, 0, 0, W, H);
    const boxes = state.drag && state.drag.mode === "draw" ? [...state.boxes, state.drag.box] : state.boxes;
    boxes.forEach((b, i) => {
      const color = colorOf(b.label);
      const x = b.x1 * W, y = b.y1 * H, w = (b.x2 - b.x1) * W, h = (b.y2 - b.y1) * H;
      const selected = i === state.sel;
      ctx.lineWidth = (selected ? 3 : 2) * dpr;
      ctx.strokeStyle = color;
      ctx.fillStyle = color + (selected ? "33" : "1a");
      ctx.fillRect(x, y, w, h);
      ctx.strokeRect(x, y, w, h);
      ctx.font = `600 ${12 * dpr}px system-ui, sans-serif`;
      const text = b.label;
      const tw = ctx.measureText(text).width + 8 * dpr;
      const ty = y > 18 * dpr ? y - 18 * dpr : y;
      ctx.fillStyle = color;
      ctx.fillRect(x, ty, tw, 18 * dpr);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x + 4 * dpr, ty + 13 * dpr);
      if (selected) {
        ctx.fillStyle = "#fff";
        ctx.strokeStyle = color;
        ctx.lineWidth = 2 * dpr;
        for (const [cx, cy] of corners(b)) {
          ctx.fillRect(cx * W - HANDLE * dpr, cy * H - HANDLE * dpr, 2 * HANDLE * dpr, 2 * HANDLE * dpr);
          ctx.strokeRect(cx * W - HANDLE * dpr, cy * H - HANDLE * dpr, 2 * HANDLE * dpr, 2 * HANDLE * dpr);
        }
      }
    });
    document.dispatchEvent(new CustomEvent("sw:tag-draw", { detail: { ctx, W, H, dpr } })); // suggestions.js
  }

  const corners = (b) => [[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2]];
  const clamp01 = (v) => Math.min(1, Math.max(0, v));

  function point(ev) {
    const r = canvas.getBoundingClientRect(), v = state.view;
    return {
      x: clamp01(v.ox + (ev.clientX - r.left) / r.width / v.scale),
      y: clamp01(v.oy + (ev.clientY - r.top) / r.height / v.scale), r,
    };
  }

  // ---- zoom and pan -----------------------------------------------------------------------------------------
  function setView(scale, ox, oy) {
    const s = Math.min(MAX_ZOOM, Math.max(1, scale));
    state.view = { scale: s, ox: Math.min(1 - 1 / s, Math.max(0, ox)), oy: Math.min(1 - 1 / s, Math.max(0, oy)) };
    const zoom = document.getElementById("zoom");
    zoom.textContent = `${Math.round(s * 100)}%`;
    zoom.hidden = s === 1;
    canvas.dataset.zoom = String(s);
    canvas.dataset.view = `${state.view.ox.toFixed(4)},${state.view.oy.toFixed(4)}`;
    draw();
  }
  canvas.addEventListener("wheel", (ev) => {
    if (!state.img) return;
    ev.preventDefault();
    const r = canvas.getBoundingClientRect(), v = state.view;
    // Zoom around the pointer: the image point under it stays under it.
    const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    const px = v.ox + fx / v.scale, py = v.oy + fy / v.scale;
    const scale = Math.min(MAX_ZOOM, Math.max(1, v.scale * (ev.deltaY < 0 ? 1.25 : 0.8)));
    setView(scale, px - fx / scale, py - fy / scale);
  }, { passive: false });

  function hit(p) {
    // A handle of the selected box first, then the smallest box under the pointer (nested boxes stay reachable).
    if (state.sel >= 0) {
      const b = state.boxes[state.sel];
      const hx = HANDLE * 1.6 / p.r.width / state.view.scale, hy = HANDLE * 1.6 / p.r.height / state.view.scale;
      const i = corners(b).findIndex(([cx, cy]) => Math.abs(p.x - cx) <= hx && Math.abs(p.y - cy) <= hy);
      if (i >= 0) return { kind: "handle", box: state.sel, corner: i };
    }
    let best = -1, bestArea = Infinity;
    state.boxes.forEach((b, i) => {
      if (p.x >= b.x1 && p.x <= b.x2 && p.y >= b.y1 && p.y <= b.y2) {
        const area = (b.x2 - b.x1) * (b.y2 - b.y1);
        if (area < bestArea) { best = i; bestArea = area; }
      }
    });
    return best >= 0 ? { kind: "box", box: best } : null;
  }

  canvas.addEventListener("pointerdown", (ev) => {
    if (!state.img) return;
    // Pan: the middle button, or the left one with Space or Alt held (while zoomed in).
    if (ev.button === 1 || (ev.button === 0 && (state.space || ev.altKey))) {
      ev.preventDefault();
      canvas.setPointerCapture(ev.pointerId);
      state.drag = { mode: "pan", cx: ev.clientX, cy: ev.clientY, orig: { ...state.view } };
      canvas.style.cursor = "grabbing";
      return;
    }
    if (ev.button !== 0) return;
    canvas.setPointerCapture(ev.pointerId);
    const p = point(ev);
    const h = hit(p);
    if (h && h.kind === "handle") {
      state.drag = { mode: "resize", box: h.box, corner: h.corner, orig: { ...state.boxes[h.box] } };
    } else if (h && h.kind === "box") {
      state.sel = h.box;
      state.drag = { mode: "move", box: h.box, start: p, orig: { ...state.boxes[h.box] } };
    } else {
      if (!state.active) { SW.toast("Create a label first", "error"); return; }
      state.sel = -1;
      state.drag = { mode: "draw", start: p, box: { label: state.active, x1: p.x, y1: p.y, x2: p.x, y2: p.y } };
    }
    render();
  });

  canvas.addEventListener("pointermove", (ev) => {
    const p = point(ev);
    const d = state.drag;
    if (!d) {
      const h = hit(p);
      canvas.style.cursor = h ? (h.kind === "handle" ? (h.corner % 2 ? "nesw-resize" : "nwse-resize") : "move") : "crosshair";
      return;
    }
    if (d.mode === "pan") {
      const r = canvas.getBoundingClientRect(), o = d.orig;
      setView(o.scale, o.ox - (ev.clientX - d.cx) / r.width / o.scale, o.oy - (ev.clientY - d.cy) / r.height / o.scale);
      return;
    }
    if (d.mode === "draw") {
      Object.assign(d.box, { x1: Math.min(d.start.x, p.x), y1: Math.min(d.start.y, p.y), x2: Math.max(d.start.x, p.x), y2: Math.max(d.start.y, p.y) });
    } else if (d.mode === "move") {
      const o = d.orig, w = o.x2 - o.x1, h = o.y2 - o.y1;
      const x1 = Math.min(1 - w, Math.max(0, o.x1 + p.x - d.start.x));
      const y1 = Math.min(1 - h, Math.max(0, o.y1 + p.y - d.start.y));
      state.boxes[d.box] = { ...o, x1, y1, x2: x1 + w, y2: y1 + h };
    } else if (d.mode === "resize") {
      const o = d.orig;
      // The corner opposite the dragged one stays put.
      const fixed = corners(o)[(d.corner + 2) % 4];
      state.boxes[d.box] = { ...o, x1: Math.min(fixed[0], p.x), y1: Math.min(fixed[1], p.y), x2: Math.max(fixed[0], p.x), y2: Math.max(fixed[1], p.y) };
    }
    draw();
  });

  function endDrag() {
    const d = state.drag;
    if (!d) return;
    state.drag = null;
    if (d.mode === "pan") { canvas.style.cursor = "crosshair"; return; }
    if (d.mode === "draw") {
      const b = d.box;
      if (b.x2 - b.x1 >= MIN_SIZE && b.y2 - b.y1 >= MIN_SIZE) {
        state.boxes.push(round(b));
        state.sel = state.boxes.length - 1;
      }
    } else {
      const b = state.boxes[d.box];
      if (b.x2 - b.x1 < MIN_SIZE || b.y2 - b.y1 < MIN_SIZE) state.boxes[d.box] = d.orig;
      else state.boxes[d.box] = round(b);
    }
    render();
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  const round = (b) => ({ label: b.label, x1: +b.x1.toFixed(5), y1: +b.y1.toFixed(5), x2: +b.x2.toFixed(5), y2: +b.y2.toFixed(5) });

  // ---- side panel -------------------------------------------------------------------------------------------
  function renderLabels() {
    const pick = document.getElementById("labelpick");
    document.getElementById("no-labels").hidden = labels.length > 0;
    pick.replaceChildren(...labels.map((l, i) => SW.h("button", {
      type: "button", class: l.name === state.active ? "active" : "", "data-label": l.name,
      title: l.description || l.name, onclick: () => chooseLabel(i),
    }, SW.h("span", { class: "swatch", style: `background:${colorOf(l.name)}` }),
      SW.h("span", {}, l.name, l.description ? SW.h("span", { class: "desc", text: l.description }) : null),
      i < 9 ? SW.h("kbd", { class: "key", text: String(i + 1) }) : null)));
    document.getElementById("mode-tags").classList.toggle("primary", state.mode === "tags");
    document.getElementById("mode-boxes").classList.toggle("primary", state.mode === "boxes");
  }

  function renderTags() {
    const box = document.getElementById("tagchips");
    box.replaceChildren(...labels.map((l) => {
      const on = state.tags.has(l.name);
      return SW.h("button", {
        type: "button", class: "chip" + (on ? " on" : ""), "data-tag": l.name, "aria-pressed": on ? "true" : "false",
        style: on ? `background:${colorOf(l.name)}` : "", onclick: () => toggleTag(l.name),
      }, on ? "✓ " : "", l.name);
    }));
  }

  function renderBoxes() {
    const list = document.getElementById("boxlist");
    document.getElementById("no-boxes").hidden = state.boxes.length > 0;
    document.getElementById("box-count").textContent = state.boxes.length ? `(${state.boxes.length})` : "";
    list.replaceChildren(...state.boxes.map((b, i) => {
      const select = SW.h("select", { "aria-label": `Label of box ${i + 1}` }, ...labels.map((l) => SW.h("option", { value: l.name, text: l.name })));
      select.value = b.label;
      select.addEventListener("change", () => { state.boxes[i] = { ...state.boxes[i], label: select.value }; render(); });
      select.addEventListener("click", (ev) => ev.stopPropagation());
      return SW.h("li", { class: i === state.sel ? "sel" : "", onclick: () => { state.sel = i; render(); } },
        SW.h("span", { class: "swatch", style: `background:${colorOf(b.label)}` }), select,
        SW.h("span", { class: "muted", text: `${Math.round((b.x2 - b.x1) * 100)}×${Math.round((b.y2 - b.y1) * 100)}%` }),
        SW.h("span", { class: "spacer" }),
        SW.h("button", { type: "button", class: "btn small danger", "aria-label": `Delete box ${i + 1}`, onclick: (ev) => { ev.stopPropagation(); deleteBox(i); } }, "✕"));
    }));
  }

  function renderNav() {
    const n = state.ids.length;
    document.getElementById("pos").textContent = n ? `${state.index + 1} / ${n} · ${[...state.tagged.values()].filter(Boolean).length} tagged` : "";
    document.getElementById("prev").disabled = state.index <= 0;
    document.getElementById("next").disabled = state.index >= n - 1;
    document.getElementById("image-title").textContent = `Image #${state.id}`;
    const r = state.rec;
    if (r) {
      const bits = [r.filename, `${r.width}×${r.height}`, `${Math.round(r.size / 1024)} KiB`,
        r.camera ? `camera ${r.camera}` : "uploaded", (r.captured_at || r.created || "").replace("T", " ").slice(0, 19),
        `split: ${r.split === "auto" ? "not assigned" : r.split}`];
      if (r.duplicate_of && r.duplicate_of !== r.id) bits.push(`looks like #${r.duplicate_of}`);
      document.getElementById("image-info").textContent = bits.filter(Boolean).join(" · ");
    }
    const strip = document.getElementById("filmstrip");
    const from = Math.max(0, state.index - 6), to = Math.min(n, from + 14);
    strip.replaceChildren(...state.ids.slice(from, to).map((id) => SW.h("a", {
      href: `/tag/${id}`, class: (id === state.id ? "cur " : "") + (state.tagged.get(id) ? "done" : ""), title: `#${id}`,
      onclick: (ev) => { ev.preventDefault(); go(state.ids.indexOf(id)); },
    }, SW.h("img", { src: `/api/v1/images/${id}/thumb.jpg`, alt: `#${id}`, loading: "lazy" }))));
  }

  function render() {
    // Every change of tags or boxes (drawn, moved, relabelled, deleted, copied, reverted) is one undo step.
    if (state.boxes.length) state.empty = false; // a drawn box ends "nothing to box"
    const empty = document.getElementById("nothing-to-box");
    empty.setAttribute("aria-pressed", String(state.empty));
    empty.classList.toggle("primary", state.empty);
    const now = snapshot();
    if (state.rec !== null && state.last !== null && now !== state.last) {
      const h = history();
      h.undo.push(state.last);
      h.redo.length = 0;
    }
    state.last = state.rec !== null ? now : null;
    const h = history();
    document.getElementById("undo").disabled = !h.undo.length;
    document.getElementById("redo").disabled = !h.redo.length;
    draw();
    renderLabels();
    renderTags();
    renderBoxes();
    document.getElementById("dirty").hidden = !isDirty();
  }

  // ---- actions ----------------------------------------------------------------------------------------------
  function chooseLabel(i) {
    const l = labels[i];
    if (!l) return;
    state.active = l.name;
    if (state.sel >= 0) state.boxes[state.sel] = { ...state.boxes[state.sel], label: l.name };
    else if (state.mode === "tags") toggleTag(l.name);
    render();
  }
  function toggleTag(name) {
    if (state.tags.has(name)) state.tags.delete(name); else state.tags.add(name);
    render();
  }
  function deleteBox(i) {
    state.boxes.splice(i, 1);
    state.sel = -1;
    render();
  }
  function restore(snap) {
    const s = JSON.parse(snap);
    state.tags = new Set(s.tags); state.boxes = s.boxes; state.empty = !!s.empty; state.sel = -1;
    state.last = snap; // not a new step
    render();
  }
  function undo() {
    const h = history();
    if (!h.undo.length) { SW.toast("Nothing to undo on this image"); return; }
    h.redo.push(snapshot());
    restore(h.undo.pop());
  }
  function redo() {
    const h = history();
    if (!h.redo.length) { SW.toast("Nothing to redo"); return; }
    h.undo.push(snapshot());
    restore(h.redo.pop());
  }

  // A photo with nothing to box (no gaps): tagged for detection, trained on as a negative photo.
  function toggleNothingToBox() {
    if (!state.empty && state.boxes.length) { SW.toast("This image has boxes: delete them to mark it \"nothing to box\""); return; }
    state.empty = !state.empty;
    render();
  }

  async function copyPrevious() {
    if (state.index <= 0) { SW.toast("This is the first image: nothing to copy from"); return; }
    const prevId = state.ids[state.index - 1];
    try {
      const prev = await SW.api("GET", `/api/v1/images/${prevId}/annotations`);
      const key = (b) => `${b.label}:${b.x1}:${b.y1}:${b.x2}:${b.y2}`;
      const have = new Set(state.boxes.map(key));
      const add = prev.boxes.map((b) => ({ label: b.label, x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 })).filter((b) => !have.has(key(b)));
      if (!prev.boxes.length && prev.tags.length) {
        prev.tags.forEach((t) => state.tags.add(t));
        SW.toast(`Copied the tags of image #${prevId}`, "ok");
      } else if (!add.length) {
        SW.toast(prev.boxes.length ? "The previous image's boxes are here already" : `Image #${prevId} has no boxes to copy`);
        return;
      } else {
        state.boxes.push(...add);
        state.sel = -1;
        SW.toast(`Copied ${add.length} box${add.length === 1 ? "" : "es"} from image #${prevId}`, "ok");
      }
      render();
    } catch (err) { SW.toast(err.message, "error"); }
  }

  function endOfQueue() {
    const untagged = state.ids.filter((id) => !state.tagged.get(id));
    const box = document.getElementById("end-prompt");
    const text = document.getElementById("end-text");
    const first = document.getElementById("first-untagged");
    text.textContent = untagged.length
      ? `End of the queue: ${untagged.length} image${untagged.length === 1 ? " is" : "s are"} still untagged.`
      : `All ${state.ids.length} images are tagged. Review the dataset next.`;
    first.hidden = !untagged.length;
    first.onclick = () => { box.hidden = true; go(state.ids.indexOf(untagged[0])); };
    box.hidden = false;
    document.getElementById("go-review").focus();
  }
  function toggleKeys(show) {
    const help = document.getElementById("keys-help");
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  function setMode(mode) {
    state.mode = mode;
    localStorage.setItem("sw.tagMode", mode);
    render();
  }

  async function save() {
    const body = { tags: [...state.tags], boxes: state.boxes, nothing_to_box: state.empty && !state.boxes.length };
    try {
      const saved = await SW.api("PUT", `/api/v1/images/${state.id}/annotations`, body);
      state.tags = new Set(saved.tags);
      state.boxes = saved.boxes;
      state.empty = !!saved.nothing_to_box;
      state.saved = snapshot();
      state.last = state.saved;
      state.tagged.set(state.id, saved.tags.length + saved.boxes.length > 0 || state.empty);
      SW.toast(`Saved image #${state.id}`, "ok");
      render();
      renderNav();
      return true;
    } catch (err) {
      SW.toast(`Not saved: ${err.message}`, "error");
      return false;
    }
  }

  async function go(index) {
    if (index < 0 || index >= state.ids.length || index === state.index && state.rec) return;
    if (isDirty() && !confirm(`Image #${state.id} has unsaved changes. Discard them?`)) return;
    state.index = index;
    await open(state.ids[index]);
  }

  async function open(id) {
    state.id = id;
    const rec = await SW.api("GET", `/api/v1/images/${id}`);
    const img = new Image();
    img.src = `/api/v1/images/${id}/file`;
    await img.decode().catch(() => {});
    state.img = img;
    state.rec = rec;
    state.tags = new Set(rec.tags);
    state.boxes = rec.boxes.map((b) => ({ label: b.label, x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 }));
    state.empty = !!rec.nothing_to_box;
    state.saved = snapshot();
    state.last = null; // opening an image is not an undo step
    state.sel = -1;
    state.view = { scale: 1, ox: 0, oy: 0 };
    document.getElementById("end-prompt").hidden = true;
    window.history.replaceState(null, "", `/tag/${id}`);
    fitCanvas();
    render();
    renderNav();
    document.dispatchEvent(new CustomEvent("sw:tag-open", { detail: { id } })); // suggestions.js
  }
  // Edit-then-accept (suggestions.js): a suggestion's boxes and tags become ordinary unsaved edits (one undo step),
  // the first box selected, so the person moves, resizes or relabels them and saves them as the annotation.
  function take({ tags = [], boxes = [] }) {
    const key = (b) => `${b.label}:${b.x1}:${b.y1}:${b.x2}:${b.y2}`;
    const have = new Set(state.boxes.map(key));
    const add = boxes.map(round).filter((b) => !have.has(key(b)));
    tags.forEach((t) => state.tags.add(t));
    state.boxes.push(...add);
    state.sel = add.length ? state.boxes.length - add.length : -1;
    if (add.length) state.active = add[0].label;
    render();
    return add.length;
  }
  function revert() {
    const s = JSON.parse(state.saved);
    state.tags = new Set(s.tags); state.boxes = s.boxes; state.empty = !!s.empty; state.sel = -1; render(); // one undo step back
  }
  window.SWTag = { reload: () => open(state.id), redraw: draw, dirty: () => isDirty(), take, save, revert }; // for suggestions.js

  async function loadIds() {
    let page = 1;
    for (;;) {
      const res = await SW.api("GET", `/api/v1/images?order=oldest&page_size=500&page=${page}`);
      for (const it of res.items) { state.ids.push(it.id); state.tagged.set(it.id, it.tagged); }
      if (page * 500 >= res.total) break;
      page += 1;
    }
  }

  document.getElementById("prev").addEventListener("click", () => go(state.index - 1));
  document.getElementById("next").addEventListener("click", () => go(state.index + 1));
  document.getElementById("save").addEventListener("click", save);
  document.getElementById("save-next").addEventListener("click", async () => {
    if (!(await save())) return;
    if (state.index >= state.ids.length - 1) endOfQueue(); else go(state.index + 1);
  });
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("redo").addEventListener("click", redo);
  document.getElementById("copy-prev").addEventListener("click", copyPrevious);
  document.getElementById("nothing-to-box").addEventListener("click", toggleNothingToBox);
  document.getElementById("keys-button").addEventListener("click", () => toggleKeys());
  document.getElementById("keys-close").addEventListener("click", () => toggleKeys(false));
  document.getElementById("end-close").addEventListener("click", () => { document.getElementById("end-prompt").hidden = true; });
  document.getElementById("revert").addEventListener("click", revert);
  document.getElementById("delete-image").addEventListener("click", async () => {
    if (!confirm(`Delete image #${state.id} and its tags from the dataset?`)) return;
    try {
      await SW.api("DELETE", `/api/v1/images/${state.id}`);
      SW.toast(`Deleted image #${state.id}`, "ok");
      state.ids.splice(state.index, 1);
      state.tagged.delete(state.id);
      state.rec = null;
      if (!state.ids.length) { location.href = "/library"; return; }
      state.index = Math.min(state.index, state.ids.length - 1);
      await open(state.ids[state.index]);
    } catch (err) { SW.toast(err.message, "error"); }
  });
  document.getElementById("mode-tags").addEventListener("click", () => setMode("tags"));
  document.getElementById("mode-boxes").addEventListener("click", () => setMode("boxes"));

  document.addEventListener("keydown", (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "s") { ev.preventDefault(); save(); return; }
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "z") { ev.preventDefault(); if (ev.shiftKey) redo(); else undo(); return; }
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "y") { ev.preventDefault(); redo(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "?") { ev.preventDefault(); toggleKeys(); return; }
    if (ev.key === " ") { ev.preventDefault(); state.space = true; canvas.style.cursor = "grab"; return; }
    if (ev.key === "c" || ev.key === "C") { ev.preventDefault(); copyPrevious(); return; }
    if (ev.key === "n" || ev.key === "N") { ev.preventDefault(); toggleNothingToBox(); return; }
    if (ev.key === "0") { ev.preventDefault(); setView(1, 0, 0); return; }
    if (ev.key === "+" || ev.key === "=") { ev.preventDefault(); const v = state.view; setView(v.scale * 1.25, v.ox, v.oy); return; }
    if (ev.key === "-") { ev.preventDefault(); const v = state.view; setView(v.scale * 0.8, v.ox, v.oy); return; }
    if (ev.key === "ArrowRight" || ev.key === "d") { ev.preventDefault(); go(state.index + 1); }
    else if (ev.key === "ArrowLeft" || ev.key === "a") { ev.preventDefault(); go(state.index - 1); }
    else if (/^[1-9]$/.test(ev.key)) { ev.preventDefault(); chooseLabel(Number(ev.key) - 1); }
    else if ((ev.key === "Delete" || ev.key === "Backspace") && state.sel >= 0) { ev.preventDefault(); deleteBox(state.sel); }
    else if (ev.key === "Escape") { state.drag = null; state.sel = -1; toggleKeys(false); render(); }
    else if (ev.key === "Enter" && !["save", "revert", "prev", "next"].includes(document.activeElement.id)
      && !document.activeElement.closest("#end-prompt, #keys-help")) {
      // Enter means "save & next" even right after clicking a label or mode button (which keeps the focus).
      ev.preventDefault();
      document.getElementById("save-next").click();
    }
  });
  window.addEventListener("beforeunload", (ev) => { if (isDirty()) { ev.preventDefault(); ev.returnValue = ""; } });
  document.addEventListener("keyup", (ev) => { if (ev.key === " ") { state.space = false; canvas.style.cursor = "crosshair"; } });
  window.addEventListener("resize", fitCanvas);

  (async () => {
    try {
      await loadIds();
      state.index = Math.max(0, state.ids.indexOf(data.image_id));
      await open(data.image_id);
    } catch (err) {
      SW.toast(err.message, "error");
    }
  })();
})();
