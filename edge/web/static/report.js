/* Report page: the mistakes gallery (test images the model got wrong: true vs predicted and score; for a detector its
   false boxes in red and the missed ones dashed in green, drawn over the photo). */
"use strict";
(() => {
  const { h } = SW;
  const data = SW.pageData("report-data");
  const box = document.getElementById("mistake-tiles");
  if (!data || !box) return;
  const NS = "http://www.w3.org/2000/svg";
  function rect(b, cls) {
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("x", b.x1); r.setAttribute("y", b.y1);
    r.setAttribute("width", Math.max(0, b.x2 - b.x1)); r.setAttribute("height", Math.max(0, b.y2 - b.y1));
    r.setAttribute("fill", "none"); r.setAttribute("vector-effect", "non-scaling-stroke"); r.setAttribute("stroke-width", "2");
    r.setAttribute("stroke", cls === "false" ? "#dc2626" : "#15803d");
    if (cls === "missed") r.setAttribute("stroke-dasharray", "5 3");
    return r;
  }
  box.replaceChildren(...data.mistakes.map((m) => {
    const pic = h("div", { class: "pic" });
    if (m.image_id) pic.append(h("img", { src: `/api/v1/images/${m.image_id}/file`, alt: m.image || "", loading: "lazy" }));
    else pic.append(h("div", { class: "muted", style: "padding:1rem", text: m.image || "image" }));
    const drawn = [...(m.false_boxes || []).map((b) => rect(b, "false")), ...(m.missed_boxes || []).map((b) => rect(b, "missed")), ...(m.zone_box ? [rect(m.zone_box, "missed")] : [])];
    if (drawn.length) {
      const svg = document.createElementNS(NS, "svg");
      svg.setAttribute("viewBox", "0 0 1 1"); svg.setAttribute("preserveAspectRatio", "none");
      svg.append(...drawn);
      pic.append(svg);
    }
    const cap = data.task === "detection"
      ? h("div", { class: "cap" }, h("span", { class: "pred", text: `${(m.false_boxes || []).length} false` }), " · ", h("span", { class: "true", text: `${(m.missed_boxes || []).length} missed` }), m.image ? h("div", { class: "muted", text: m.image }) : null)
      : h("div", { class: "cap" }, "true ", h("span", { class: "true", text: m.true }), " · predicted ", h("span", { class: "pred", text: m.predicted }),
        typeof m.score === "number" ? ` (${m.score.toFixed(2)})` : "", m.zone ? h("div", { class: "muted", text: `zone ${m.zone}` }) : null);
    return h("figure", { class: "mistake" }, pic, cap);
  }));
})();
