/* Predict on the Models page: draws the running model's answer on the uploaded image (the label and score for a
   classifier, every box with its label and score for a detector); models.js sends the request. */
"use strict";
(() => {
  const view = document.getElementById("predict-view");
  const canvas = document.getElementById("predict-canvas");
  const summary = document.getElementById("predict-summary");
  if (!view || !canvas) return;
  const BOX = "#fbbf24";

  async function show({ answer, file }) {
    if (!file) return;
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.src = url;
    try { await img.decode(); } catch { view.hidden = true; URL.revokeObjectURL(url); return; }
    const maxW = Math.min(640, view.parentElement.clientWidth || 640);
    const scale = Math.min(1, maxW / img.naturalWidth);
    const w = Math.round(img.naturalWidth * scale), h = Math.round(img.naturalHeight * scale);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = w * dpr; canvas.height = h * dpr;
    canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    URL.revokeObjectURL(url);
    ctx.font = `600 ${14 * dpr}px system-ui, sans-serif`;
    const tag = (text, x, y, bg, fg) => {
      const tw = ctx.measureText(text).width + 10 * dpr;
      ctx.fillStyle = bg; ctx.fillRect(x, y, tw, 20 * dpr);
      ctx.fillStyle = fg; ctx.fillText(text, x + 5 * dpr, y + 15 * dpr);
    };
    const model = answer.model ? `${answer.model.name} ${answer.model.version}` : "the model";
    if (Array.isArray(answer.detections)) {
      for (const d of answer.detections) {
        const [x1, y1, x2, y2] = d.bbox;
        ctx.lineWidth = 3 * dpr; ctx.strokeStyle = BOX;
        ctx.strokeRect(x1 * canvas.width, y1 * canvas.height, (x2 - x1) * canvas.width, (y2 - y1) * canvas.height);
        tag(`${d.label} ${d.score.toFixed(2)}`, x1 * canvas.width, Math.max(0, y1 * canvas.height - 20 * dpr), BOX, "#111");
      }
      summary.textContent = `${answer.detections.length} box${answer.detections.length === 1 ? "" : "es"} found by ${model} in ${answer.inference_ms} ms`;
    } else {
      tag(`${answer.label} ${Number(answer.score).toFixed(2)}`, 8 * dpr, 8 * dpr, "rgb(15 23 42 / .85)", "#fff");
      const top = Object.entries(answer.label_scores || {}).sort((a, b) => b[1] - a[1]).slice(0, 3)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`).join(" · ");
      summary.textContent = `${model} says ${answer.label} (${top}) in ${answer.inference_ms} ms`;
    }
    canvas.dataset.answer = Array.isArray(answer.detections) ? `${answer.detections.length} boxes` : answer.label;
    view.hidden = false;
  }
  window.addEventListener("sw:predicted", (ev) => show(ev.detail));
})();
