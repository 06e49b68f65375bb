/* Model-assisted labelling on the library page: the inbox ("N waiting · M reviewed since v3: Retrain", a link to
   the inbox view ?inbox=true), the review queue ordered by uncertainty or similarity, and "Suggest for all
   untagged" with its progress. Shown only when the project has an active version or an inbox. */
"use strict";
(() => {
  const head = document.querySelector(".page-head");
  if (!head) return;
  const bar = SW.h("section", { class: "panel row", id: "assist-bar", hidden: true });
  head.after(bar);
  const params = new URLSearchParams(location.search);

  async function progress() {
    const job = await SW.api("GET", "/api/v1/suggestions/bulk");
    const el = document.getElementById("bulk-progress");
    if (el) el.textContent = job.state === "none" ? "" : `${job.state}: ${job.done} of ${job.total}`;
    if (job.state === "running") setTimeout(progress, 1000);
  }

  async function render() {
    let inbox = null;
    let summary = null;
    try { inbox = await SW.api("GET", "/api/v1/inbox"); } catch (err) { inbox = null; }
    try { summary = await SW.api("GET", "/api/v1/suggestions"); } catch (err) { summary = null; }
    if (!summary && !(inbox && inbox.total)) return;
    const parts = [];
    if (inbox && inbox.total) {
      parts.push(SW.h("a", { class: "btn small" + (params.get("inbox") === "true" ? " primary" : ""), href: "/library?inbox=true", id: "inbox-link",
        text: `Inbox: ${inbox.waiting} waiting` }));
      if (inbox.message) {
        parts.push(SW.h("span", { id: "inbox-reviewed", text: inbox.message }));
        if (inbox.retrain) parts.push(SW.h("a", { class: "btn small primary", href: "/training", text: "Retrain" }));
      }
    }
    if (summary) {
      parts.push(SW.h("a", { class: "btn small", href: "/library?order=uncertainty&tagged=false", text: "Least certain first" }));
      parts.push(SW.h("a", { class: "btn small", href: "/library?order=similarity&tagged=false", text: "Most similar first" }));
      const bulk = SW.h("button", { type: "button", class: "btn small", id: "bulk-suggest",
        text: `Suggest for all untagged (${summary.untagged - summary.suggested} without)` });
      bulk.addEventListener("click", async () => {
        try { await SW.api("POST", "/api/v1/suggestions/bulk"); progress(); } catch (err) { SW.toast(err.message, "error"); }
      });
      parts.push(bulk, SW.h("span", { class: "muted", id: "bulk-progress" }));
    }
    bar.replaceChildren(SW.h("strong", { text: "Assist" }), ...parts);
    bar.hidden = false;
    progress().catch(() => {});
  }
  render();
})();
