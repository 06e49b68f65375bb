/* Live view: MJPEG stream per camera, what the model sees drawn over it (zones in their state colour with score,
   detections as boxes, model, evaluated fps, inference ms; fed by server-sent events from
   /api/v1/cameras/<id>/live), camera status polling, Capture (button or Space on a single camera). */
"use strict";
(() => {
  const cards = [...document.querySelectorAll(".cam[data-camera]")];
  const total = document.getElementById("captured-total");
  let capturedTotal = 0;

  function statusClass(status) {
    if (["online"].includes(status)) return "pill ok";
    if (["error", "failed", "offline", "stalled", "reconnecting"].includes(status)) return "pill bad";
    return "pill warn";
  }

  for (const card of cards) {
    const id = card.dataset.camera;
    const view = card.querySelector('[data-role="view"]');
    const offline = card.querySelector('[data-role="offline"]');
    const btn = card.querySelector('[data-role="capture"]');
    const count = card.querySelector('[data-role="count"]');
    const flash = card.querySelector('[data-role="flash"]');
    const status = card.querySelector('[data-role="status"]');
    status.className = statusClass(status.textContent.trim());
    let captured = 0;

    view.addEventListener("error", () => { offline.hidden = false; setTimeout(() => { view.src = view.dataset.stream + "?t=" + Date.now(); }, 3000); });
    view.addEventListener("load", () => { offline.hidden = true; });

    btn.addEventListener("click", async () => {
      btn.disabled = true;
      try {
        const rec = await SW.api("POST", `/api/v1/cameras/${encodeURIComponent(id)}/capture`);
        flash.classList.add("on");
        requestAnimationFrame(() => requestAnimationFrame(() => flash.classList.remove("on")));
        if (rec.duplicate_of === rec.id) {
          SW.toast(`This frame is identical to image ${rec.id}; nothing new stored`, "");
        } else {
          captured += 1; capturedTotal += 1;
          if (!rec.duplicate_of) SW.toast(`Captured image #${rec.id}`, "ok");
          count.textContent = `${captured} captured in this session · last #${rec.id} (${rec.width}×${rec.height})`;
          total.textContent = `${capturedTotal} captured`;
          if (rec.duplicate_of) SW.toast(`Captured #${rec.id}; it looks almost the same as #${rec.duplicate_of}`);
          const recent = card.querySelector('[data-role="recent"]');
          recent.hidden = false;
          recent.prepend(SW.h("a", { href: `/tag/${rec.id}`, title: `Tag image #${rec.id}` },
            SW.h("img", { src: `/api/v1/images/${rec.id}/thumb.jpg`, alt: `#${rec.id}` })));
          while (recent.children.length > 12) recent.lastElementChild.remove();
        }
      } catch (err) {
        SW.toast(`Capture failed: ${err.message}`, "error");
      } finally {
        btn.disabled = false;
      }
    });

    async function poll() {
      try {
        const info = await SW.api("GET", `/api/v1/cameras/${encodeURIComponent(id)}`);
        status.textContent = info.status;
        status.className = statusClass(info.status);
        card.querySelector('[data-role="fps"]').textContent = `${Number(info.fps || 0).toFixed(1)} fps`;
      } catch (err) { /* the next poll will tell */ }
    }
    setInterval(poll, 3000);
    follow(card, view);
  }

  const STATE_COLOURS = { ok: "#22c55e", low_stock: "#dc2626", unknown: "#94a3b8" };
  const BOX_COLOUR = "#fbbf24";

  /** Follow the camera's live results (server-sent events) and draw them over the stream. */
  function follow(card, view) {
    const info = card.querySelector('[data-role="live-info"]');
    const canvas = card.querySelector('[data-role="overlay"]');
    let last = null;
    let source = null;

    function draw() {
      const box = canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(box.width * dpr); canvas.height = Math.round(box.height * dpr);
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      if (!last || !last.online || !view.naturalWidth) return;
      // The picture is drawn with object-fit: contain; map normalised coordinates into its letterboxed rectangle.
      const scale = Math.min(canvas.width / view.naturalWidth, canvas.height / view.naturalHeight);
      const w = view.naturalWidth * scale, h = view.naturalHeight * scale;
      const ox = (canvas.width - w) / 2, oy = (canvas.height - h) / 2;
      const X = (x) => ox + x * w, Y = (y) => oy + y * h;
      ctx.font = `600 ${12 * dpr}px system-ui, sans-serif`;
      ctx.lineJoin = "round";
      for (const z of last.zones) {
        const c = STATE_COLOURS[z.state] || STATE_COLOURS.unknown;
        ctx.beginPath();
        z.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
        ctx.closePath();
        ctx.globalAlpha = z.state === "low_stock" ? 0.22 : 0.1; ctx.fillStyle = c; ctx.fill();
        ctx.globalAlpha = 1; ctx.lineWidth = 3 * dpr; ctx.strokeStyle = c; ctx.stroke();
        const score = z.score === null ? "" : ` ${z.score.toFixed(2)}`;
        const text = `${z.name} · ${z.state.replace("_", " ")}${score}`;
        const [x0, y0] = z.polygon.reduce(([ax, ay], [x, y]) => [Math.min(ax, x), Math.min(ay, y)], [1, 1]);
        const tw = ctx.measureText(text).width + 10 * dpr;
        const lx = Math.min(X(x0) + 2 * dpr, ox + w - tw), ly = Y(y0) + 2 * dpr;
        ctx.fillStyle = c; ctx.fillRect(lx, ly, tw, 18 * dpr);
        ctx.fillStyle = "#fff"; ctx.fillText(text, lx + 5 * dpr, ly + 13 * dpr);
      }
      for (const d of last.detections) {
        const [x1, y1, x2, y2] = d.bbox;
        ctx.lineWidth = 2 * dpr; ctx.strokeStyle = BOX_COLOUR;
        ctx.strokeRect(X(x1), Y(y1), X(x2) - X(x1), Y(y2) - Y(y1));
        const text = `${d.label} ${d.score.toFixed(2)}`;
        ctx.fillStyle = BOX_COLOUR; ctx.fillRect(X(x1), Y(y2) - 16 * dpr, ctx.measureText(text).width + 8 * dpr, 16 * dpr);
        ctx.fillStyle = "#111"; ctx.fillText(text, X(x1) + 4 * dpr, Y(y2) - 4 * dpr);
      }
    }

    function show(result) {
      last = result;
      card.dataset.liveSeq = result.seq;
      card.dataset.zoneStates = result.zones.map((z) => `${z.id}=${z.state}`).join(" ");
      info.querySelector('[data-role="model"]').textContent = result.model ? `model ${result.model_name || result.model.version}` : "no model deployed";
      info.querySelector('[data-role="evaluated"]').textContent = `evaluated ${Number(result.fps).toFixed(1)} fps`;
      info.querySelector('[data-role="inference"]').textContent = result.model ? `inference ${Number(result.inference_ms).toFixed(0)} ms` : "";
      draw();
    }

    function connect() {
      source = new EventSource(info.dataset.feed);
      source.addEventListener("live", (ev) => show(JSON.parse(ev.data)));
      source.addEventListener("error", () => {
        // A refused feed (503: no pipeline here, or too many streams) closes for good: try again later, gently.
        if (source.readyState === EventSource.CLOSED) {
          info.querySelector('[data-role="model"]').textContent = "not evaluated on this device";
          setTimeout(connect, 15000);
        }
      });
    }
    connect();
    view.addEventListener("load", draw);
    window.addEventListener("resize", draw);
    window.addEventListener("pagehide", () => source && source.close());
  }

  // The stream starts after the page has loaded, so "load" does not wait on a never-ending response.
  window.addEventListener("load", () => {
    for (const card of cards) {
      const view = card.querySelector('[data-role="view"]');
      view.src = view.dataset.stream;
    }
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.code === "Space" && cards.length === 1 && !["INPUT", "TEXTAREA", "BUTTON"].includes(document.activeElement.tagName)) {
      ev.preventDefault();
      cards[0].querySelector('[data-role="capture"]').click();
    }
  });
})();
