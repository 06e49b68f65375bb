/* Zones editor over the camera's frame: draw rectangles (drag on an empty spot) and polygons (click the corners,
   double-click or Enter to close); select a zone by clicking it, move it by dragging, resize it by its corner
   handles, delete it with Delete or its ✕. Names are free text; the id (part of MQTT topics) is generated from the
   name, unique within the camera, and stays fixed once saved. Each zone may name its own alert label. */
"use strict";
(() => {
  const data = SW.pageData("zones-data");
  if (!data || !data.camera_id) return;
  const cam = data.camera_id;
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const state = { img: null, zones: [], saved: "", sel: -1, tool: "rect", drag: null, poly: null, labels: [] };
  const snapshot = () => JSON.stringify(state.zones.map(({ id, name, polygon, label }) => ({ id, name, polygon, label })));
  const clamp01 = (v) => Math.min(1, Math.max(0, v));
  const color = (i) => `hsl(${(i * 67) % 360} 80% 50%)`;
  const HANDLE = 7; // CSS px: half the side of a corner handle (and its grab radius)

  document.getElementById("camera")?.addEventListener("change", (ev) => { location.href = `/zones/${encodeURIComponent(ev.target.value)}`; });

  /** A slug of the name (what the server accepts as an id), unique among the other zones. */
  function slugFor(name, self) {
    const base = (name || "").normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^a-z0-9_-]+/g, "-").replace(/^[-_]+|-+$/g, "").slice(0, 50) || "zone";
    const taken = new Set(state.zones.filter((z) => z !== self).map((z) => z.id));
    let id = base, n = 2;
    while (taken.has(id)) id = `${base}-${n++}`;
    return id;
  }

  function fit() {
    const stage = document.getElementById("stage");
    const aspect = state.img ? state.img.naturalWidth / state.img.naturalHeight : 4 / 3;
    let w = stage.parentElement.clientWidth;
    // On a wide screen the whole frame stays in view; a phone scrolls instead.
    const maxH = window.innerHeight - Math.min(stage.getBoundingClientRect().top + window.scrollY, 200) - 24;
    if (window.innerWidth > 600 && w / aspect > maxH) w = Math.max(240, maxH * aspect);
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = `${Math.round(w)}px`; canvas.style.height = `${Math.round(w / aspect)}px`;
    stage.style.width = `${Math.round(w)}px`;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round((w / aspect) * dpr);
    draw();
  }

  function path(points) {
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x * canvas.width, y * canvas.height) : ctx.moveTo(x * canvas.width, y * canvas.height)));
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    ctx.fillStyle = "#0b1220"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (state.img) ctx.drawImage(state.img, 0, 0, canvas.width, canvas.height);
    const shapes = state.zones.map((z, i) => ({ pts: z.polygon, c: color(i), name: z.name || z.id, sel: i === state.sel }));
    if (state.drag && state.drag.mode === "draw") shapes.push({ pts: rectPts(state.drag.a, state.drag.b), c: "hsl(0 0% 100%)", name: "" });
    for (const s of shapes) {
      path(s.pts); ctx.closePath();
      ctx.fillStyle = s.c.replace(")", " / .2)"); ctx.fill();
      ctx.lineWidth = (s.sel ? 3 : 2) * dpr; ctx.strokeStyle = s.c; ctx.stroke();
      if (s.name) {
        ctx.font = `600 ${13 * dpr}px system-ui, sans-serif`;
        const [x, y] = s.pts[0];
        ctx.fillStyle = s.c; ctx.fillRect(x * canvas.width, y * canvas.height, ctx.measureText(s.name).width + 8 * dpr, 18 * dpr);
        ctx.fillStyle = "#fff"; ctx.fillText(s.name, x * canvas.width + 4 * dpr, y * canvas.height + 13 * dpr);
      }
    }
    const sel = state.zones[state.sel];
    if (sel) {
      for (const [x, y] of sel.polygon) {
        ctx.fillStyle = "#fff"; ctx.strokeStyle = "#0f172a"; ctx.lineWidth = 1.5 * dpr;
        ctx.fillRect(x * canvas.width - HANDLE * dpr, y * canvas.height - HANDLE * dpr, 2 * HANDLE * dpr, 2 * HANDLE * dpr);
        ctx.strokeRect(x * canvas.width - HANDLE * dpr, y * canvas.height - HANDLE * dpr, 2 * HANDLE * dpr, 2 * HANDLE * dpr);
      }
    }
    if (state.poly && state.poly.length) {
      path(state.poly); ctx.strokeStyle = "#fbbf24"; ctx.lineWidth = 2 * dpr; ctx.stroke();
      for (const [x, y] of state.poly) { ctx.fillStyle = "#fbbf24"; ctx.fillRect(x * canvas.width - 4 * dpr, y * canvas.height - 4 * dpr, 8 * dpr, 8 * dpr); }
    }
    document.getElementById("dirty").hidden = snapshot() === state.saved;
    canvas.dataset.selected = sel ? sel.id : "";
  }

  const rectPts = (a, b) => {
    const x1 = Math.min(a.x, b.x), x2 = Math.max(a.x, b.x), y1 = Math.min(a.y, b.y), y2 = Math.max(a.y, b.y);
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
  };
  const isRect = (p) => p.length === 4 && p[0][1] === p[1][1] && p[1][0] === p[2][0] && p[2][1] === p[3][1] && p[3][0] === p[0][0];
  const pt = (ev) => { const r = canvas.getBoundingClientRect(); return { x: clamp01((ev.clientX - r.left) / r.width), y: clamp01((ev.clientY - r.top) / r.height) }; };
  const round = (pts) => pts.map(([x, y]) => [+x.toFixed(4), +y.toFixed(4)]);

  /** Whether p lies inside the polygon (even-odd rule). */
  function inside(p, poly) {
    let hit = false;
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i], [xj, yj] = poly[j];
      if ((yi > p.y) !== (yj > p.y) && p.x < ((xj - xi) * (p.y - yi)) / (yj - yi) + xi) hit = !hit;
    }
    return hit;
  }
  /** The corner of the selected zone under the pointer, or -1. */
  function handleAt(ev) {
    const z = state.zones[state.sel];
    if (!z) return -1;
    const r = canvas.getBoundingClientRect();
    return z.polygon.findIndex(([x, y]) => Math.abs(r.left + x * r.width - ev.clientX) <= HANDLE + 2 && Math.abs(r.top + y * r.height - ev.clientY) <= HANDLE + 2);
  }
  function zoneAt(p) {
    // The selected zone first (it is drawn with handles), then the topmost (last drawn).
    if (state.sel >= 0 && inside(p, state.zones[state.sel].polygon)) return state.sel;
    for (let i = state.zones.length - 1; i >= 0; i -= 1) if (inside(p, state.zones[i].polygon)) return i;
    return -1;
  }

  function addZone(points) {
    const n = state.zones.length + 1;
    const zone = { id: "", name: `Zone ${n}`, polygon: round(points), label: null, fresh: true };
    zone.id = slugFor(zone.name, zone);
    state.zones.push(zone);
    state.sel = state.zones.length - 1;
    list(); draw();
  }
  function select(i) { state.sel = i; list(); draw(); }

  canvas.addEventListener("pointerdown", (ev) => {
    const p = pt(ev);
    if (state.tool === "poly") {
      // A double-click closes the polygon; its two clicks must not add corners on top of the last one.
      const last = state.poly && state.poly[state.poly.length - 1];
      if (!last || Math.hypot(last[0] - p.x, last[1] - p.y) > 0.01) state.poly = [...(state.poly || []), [p.x, p.y]];
      draw();
      return;
    }
    canvas.setPointerCapture(ev.pointerId);
    const corner = handleAt(ev);
    if (corner >= 0) {
      const z = state.zones[state.sel];
      state.drag = { mode: "resize", corner, rect: isRect(z.polygon), start: z.polygon.map((q) => [...q]) };
      return;
    }
    const hit = zoneAt(p);
    if (hit >= 0) {
      if (hit !== state.sel) select(hit);
      state.drag = { mode: "move", from: p, start: state.zones[hit].polygon.map((q) => [...q]) };
      return;
    }
    if (state.sel >= 0) select(-1);
    state.drag = { mode: "draw", a: p, b: p };
  });
  canvas.addEventListener("pointermove", (ev) => {
    const d = state.drag;
    if (!d) {
      canvas.style.cursor = state.tool === "poly" ? "crosshair" : handleAt(ev) >= 0 ? "nwse-resize" : zoneAt(pt(ev)) >= 0 ? "move" : "crosshair";
      return;
    }
    const p = pt(ev);
    const z = state.zones[state.sel];
    if (d.mode === "draw") d.b = p;
    else if (d.mode === "move") {
      // Keep the whole zone on the frame: the shift is limited by its bounding box.
      const xs = d.start.map((q) => q[0]), ys = d.start.map((q) => q[1]);
      const dx = Math.min(1 - Math.max(...xs), Math.max(-Math.min(...xs), p.x - d.from.x));
      const dy = Math.min(1 - Math.max(...ys), Math.max(-Math.min(...ys), p.y - d.from.y));
      z.polygon = round(d.start.map(([x, y]) => [x + dx, y + dy]));
    } else if (d.mode === "resize") {
      if (d.rect) {
        const opposite = d.start[(d.corner + 2) % 4];
        z.polygon = round(rectPts({ x: opposite[0], y: opposite[1] }, p));
        // Keep dragging the same corner after the points were re-ordered.
        d.corner = z.polygon.findIndex(([x, y]) => x === +p.x.toFixed(4) && y === +p.y.toFixed(4));
        d.start = z.polygon.map((q) => [...q]);
      } else {
        z.polygon = round(z.polygon.map((q, i) => (i === d.corner ? [p.x, p.y] : q)));
      }
    }
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    const d = state.drag; state.drag = null;
    if (d && d.mode === "draw" && Math.abs(d.a.x - d.b.x) > 0.01 && Math.abs(d.a.y - d.b.y) > 0.01) addZone(rectPts(d.a, d.b));
    else if (d && d.mode === "resize") {
      const z = state.zones[state.sel];
      const xs = z.polygon.map((q) => q[0]), ys = z.polygon.map((q) => q[1]);
      if (Math.max(...xs) - Math.min(...xs) < 0.01 || Math.max(...ys) - Math.min(...ys) < 0.01) {
        z.polygon = d.start; SW.toast("A zone needs an area: the resize was undone", "error");
      }
      list(); draw();
    } else { list(); draw(); }
  });
  function closePoly() {
    if (state.poly && state.poly.length >= 3) addZone(state.poly);
    state.poly = null; draw();
  }
  function removeZone(i) { state.zones.splice(i, 1); state.sel = -1; list(); draw(); }
  canvas.addEventListener("dblclick", closePoly);
  document.addEventListener("keydown", (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    if (ev.key === "Enter") closePoly();
    if (ev.key === "Escape") { state.poly = null; select(-1); }
    if ((ev.key === "Delete" || ev.key === "Backspace") && state.sel >= 0) { ev.preventDefault(); removeZone(state.sel); }
  });

  for (const b of document.querySelectorAll("[data-tool]")) {
    b.addEventListener("click", () => {
      state.tool = b.dataset.tool; state.poly = null;
      document.querySelectorAll("[data-tool]").forEach((x) => x.classList.toggle("primary", x === b));
      document.getElementById("tool-hint").textContent = state.tool === "rect"
        ? "Drag on an empty spot to draw; drag a zone to move it, its corners to resize it."
        : "Click the corners; double-click or Enter closes the polygon.";
      draw();
    });
  }

  function list() {
    document.getElementById("no-zones").hidden = state.zones.length > 0;
    document.getElementById("zonelist").replaceChildren(...state.zones.map((z, i) => {
      const name = SW.h("input", { value: z.name || "", "aria-label": "Zone name", placeholder: "Name, e.g. End cap" });
      const id = SW.h("code", { class: "zone-id", title: "The id in MQTT topics: made from the name, fixed once saved", text: z.id });
      name.addEventListener("input", () => {
        z.name = name.value;
        if (z.fresh) { z.id = slugFor(z.name, z); id.textContent = z.id; }
        draw();
      });
      const label = SW.h("select", { "aria-label": "Alert label", title: "The label that means low stock in this zone" },
        SW.h("option", { value: "", text: "alert: model default" }),
        ...state.labels.map((l) => SW.h("option", { value: l.name, text: `alert: ${l.name}` })));
      if (z.label && !state.labels.some((l) => l.name === z.label)) label.append(SW.h("option", { value: z.label, text: `alert: ${z.label}` }));
      label.value = z.label || "";
      label.addEventListener("change", () => { z.label = label.value || null; draw(); });
      return SW.h("li", { class: i === state.sel ? "sel zone-item" : "zone-item", "data-zone": z.id, onclick: (ev) => { if (ev.target === ev.currentTarget) select(i); } },
        SW.h("span", { class: "swatch", style: `background:${color(i)}`, onclick: () => select(i) }),
        SW.h("div", { class: "zone-fields" }, name, SW.h("div", { class: "row" }, id, label)),
        SW.h("button", { type: "button", class: "btn small danger", "aria-label": `Delete zone ${z.name || z.id}`, onclick: (ev) => { ev.stopPropagation(); removeZone(i); } }, "✕"));
    }));
  }

  async function loadFrame() {
    const img = new Image();
    img.src = `/api/v1/cameras/${encodeURIComponent(cam)}/frame.jpg?t=${Date.now()}`;
    try { await img.decode(); state.img = img; } catch { SW.toast("No frame from this camera right now", "error"); }
    fit();
  }
  function loaded(zones) {
    state.zones = zones.map((z) => ({ id: z.id, name: z.name || z.id, polygon: z.polygon, label: z.label || null, fresh: false }));
    state.saved = snapshot();
  }
  document.getElementById("refresh").addEventListener("click", loadFrame);
  document.getElementById("save").addEventListener("click", async () => {
    try {
      const res = await SW.api("PUT", `/api/v1/cameras/${encodeURIComponent(cam)}/zones`, { zones: state.zones.map((z) => ({ id: z.id, name: z.name || null, polygon: z.polygon, label: z.label || null })) });
      const sel = state.sel;
      loaded(res.zones); state.sel = sel < state.zones.length ? sel : -1; list(); draw();
      SW.toast("Zones saved", "ok");
    } catch (err) { SW.toast(`Not saved: ${err.message}`, "error"); }
  });
  window.addEventListener("beforeunload", (ev) => { if (snapshot() !== state.saved) { ev.preventDefault(); ev.returnValue = ""; } });
  window.addEventListener("resize", fit);

  (async () => {
    const [res, labels] = await Promise.all([
      SW.api("GET", `/api/v1/cameras/${encodeURIComponent(cam)}/zones`),
      SW.api("GET", "/api/v1/labels").catch(() => ({ items: [] })),
    ]);
    state.labels = labels.items || [];
    loaded(res.zones);
    list();
    await loadFrame();
  })().catch((err) => SW.toast(err.message, "error"));
})();
