/* Live view: MJPEG stream per camera, status polling, Capture (button or Space on a single camera). */
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
