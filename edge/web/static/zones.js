/* Zones editor: rectangles (drag) and polygons (click corners, double-click or Enter to close) over the frame. */
"use strict";
(() => {
  const data = SW.pageData("zones-data");
  if (!data || !data.camera_id) return;
  const cam = data.camera_id;
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const state = { img: null, zones: [], saved: "", sel: -1, tool: "rect", drag: null, poly: null };
  const snapshot = () => JSON.stringify(state.zones);
  const clamp01 = (v) => Math.min(1, Math.max(0, v));
  const color = (i) => `hsl(${(i * 67) % 360} 80% 50%)`;

  document.getElementById("camera")?.addEventListener("change", (ev) => { location.href = `/zones/${encodeURIComponent(ev.target.value)}`; });

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
    const shapes = [...state.zones.map((z, i) => ({ pts: z.polygon, c: color(i), name: z.name || z.id, sel: i === state.sel }))];
    if (state.drag) shapes.push({ pts: rectPts(state.drag.a, state.drag.b), c: "#fff", name: "" });
    for (const s of shapes) {
      path(s.pts); ctx.closePath();
      ctx.fillStyle = s.c.replace("50%)", "50% / .2)"); ctx.fill();
      ctx.lineWidth = (s.sel ? 3 : 2) * dpr; ctx.strokeStyle = s.c; ctx.stroke();
      if (s.name) {
        ctx.font = `600 ${13 * dpr}px system-ui, sans-serif`;
        const [x, y] = s.pts[0];
        ctx.fillStyle = s.c; ctx.fillRect(x * canvas.width, y * canvas.height, ctx.measureText(s.name).width + 8 * dpr, 18 * dpr);
        ctx.fillStyle = "#fff"; ctx.fillText(s.name, x * canvas.width + 4 * dpr, y * canvas.height + 13 * dpr);
      }
    }
    if (state.poly && state.poly.length) {
      path(state.poly); ctx.strokeStyle = "#fbbf24"; ctx.lineWidth = 2 * dpr; ctx.stroke();
      for (const [x, y] of state.poly) { ctx.fillStyle = "#fbbf24"; ctx.fillRect(x * canvas.width - 4 * dpr, y * canvas.height - 4 * dpr, 8 * dpr, 8 * dpr); }
    }
    document.getElementById("dirty").hidden = snapshot() === state.saved;
  }

  const rectPts = (a, b) => {
    const x1 = Math.min(a.x, b.x), x2 = Math.max(a.x, b.x), y1 = Math.min(a.y, b.y), y2 = Math.max(a.y, b.y);
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
  };
  const pt = (ev) => { const r = canvas.getBoundingClientRect(); return { x: clamp01((ev.clientX - r.left) / r.width), y: clamp01((ev.clientY - r.top) / r.height) }; };
  const round = (pts) => pts.map(([x, y]) => [+x.toFixed(4), +y.toFixed(4)]);

  function nextId() {
    let n = state.zones.length + 1;
    while (state.zones.some((z) => z.id === `zone-${n}`)) n += 1;
    return `zone-${n}`;
  }
  function addZone(points) {
    const id = nextId();
    state.zones.push({ id, name: `Zone ${id.split("-")[1]}`, polygon: round(points) });
    state.sel = state.zones.length - 1;
    list(); draw();
  }

  canvas.addEventListener("pointerdown", (ev) => {
    const p = pt(ev);
    if (state.tool === "rect") { canvas.setPointerCapture(ev.pointerId); state.drag = { a: p, b: p }; }
    else {
      // A double-click closes the polygon; its two clicks must not add corners on top of the last one.
      const last = state.poly && state.poly[state.poly.length - 1];
      if (!last || Math.hypot(last[0] - p.x, last[1] - p.y) > 0.01) state.poly = [...(state.poly || []), [p.x, p.y]];
      draw();
    }
  });
  canvas.addEventListener("pointermove", (ev) => { if (state.drag) { state.drag.b = pt(ev); draw(); } });
  canvas.addEventListener("pointerup", () => {
    const d = state.drag; state.drag = null;
    if (d && Math.abs(d.a.x - d.b.x) > 0.01 && Math.abs(d.a.y - d.b.y) > 0.01) addZone(rectPts(d.a, d.b)); else draw();
  });
  function closePoly() {
    if (state.poly && state.poly.length >= 3) addZone(state.poly);
    state.poly = null; draw();
  }
  canvas.addEventListener("dblclick", closePoly);
  document.addEventListener("keydown", (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    if (ev.key === "Enter") closePoly();
    if (ev.key === "Escape") { state.poly = null; state.sel = -1; list(); draw(); }
    if ((ev.key === "Delete" || ev.key === "Backspace") && state.sel >= 0) { state.zones.splice(state.sel, 1); state.sel = -1; list(); draw(); }
  });

  for (const b of document.querySelectorAll("[data-tool]")) {
    b.addEventListener("click", () => {
      state.tool = b.dataset.tool; state.poly = null;
      document.querySelectorAll("[data-tool]").forEach((x) => x.classList.toggle("primary", x === b));
      document.getElementById("tool-hint").textContent = state.tool === "rect"
        ? "Drag on the frame to draw a rectangle." : "Click the corners; double-click or Enter closes the polygon.";
      draw();
    });
  }

  function list() {
    document.getElementById("no-zones").hidden = state.zones.length > 0;
    document.getElementById("zonelist").replaceChildren(...state.zones.map((z, i) => {
      const id = SW.h("input", { value: z.id, "aria-label": "Zone id", size: 8 });
      const name = SW.h("input", { value: z.name || "", "aria-label": "Zone name", size: 10 });
      id.addEventListener("input", () => { z.id = id.value.trim(); draw(); });
      name.addEventListener("input", () => { z.name = name.value; draw(); });
      return SW.h("li", { class: i === state.sel ? "sel" : "", onclick: () => { state.sel = i; list(); draw(); } },
        SW.h("span", { class: "swatch", style: `background:${color(i)}` }), id, name,
        SW.h("button", { type: "button", class: "btn small danger", "aria-label": `Delete zone ${z.id}`, onclick: (ev) => { ev.stopPropagation(); state.zones.splice(i, 1); state.sel = -1; list(); draw(); } }, "✕"));
    }));
  }

  async function loadFrame() {
    const img = new Image();
    img.src = `/api/v1/cameras/${encodeURIComponent(cam)}/frame.jpg?t=${Date.now()}`;
    try { await img.decode(); state.img = img; } catch { SW.toast("No frame from this camera right now", "error"); }
    fit();
  }
  document.getElementById("refresh").addEventListener("click", loadFrame);
  document.getElementById("save").addEventListener("click", async () => {
    try {
      const res = await SW.api("PUT", `/api/v1/cameras/${encodeURIComponent(cam)}/zones`, { zones: state.zones.map((z) => ({ id: z.id, name: z.name || null, polygon: z.polygon, label: z.label || null })) });
      state.zones = res.zones; state.saved = snapshot(); list(); draw();
      SW.toast("Zones saved", "ok");
    } catch (err) { SW.toast(`Not saved: ${err.message}`, "error"); }
  });
  window.addEventListener("beforeunload", (ev) => { if (snapshot() !== state.saved) { ev.preventDefault(); ev.returnValue = ""; } });
  window.addEventListener("resize", fit);

  (async () => {
    const res = await SW.api("GET", `/api/v1/cameras/${encodeURIComponent(cam)}/zones`);
    state.zones = res.zones; state.saved = snapshot();
    list();
    await loadFrame();
  })().catch((err) => SW.toast(err.message, "error"));
})();
