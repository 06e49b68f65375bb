/* The skills page: draws each skill's chain with every block's last output (refreshed every second) and saves edits. */
"use strict";
(() => {
  const view = document.getElementById("skills-view");
  const chains = document.getElementById("skills-chains");
  const editor = document.getElementById("skills-yaml");
  const errorBox = document.getElementById("skills-error");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 60 ? `${s.toFixed(1)} s ago` : `${Math.round(s / 60)} min ago`;
  }

  function draw(debug) {
    document.getElementById("skills-default").hidden = !debug.default;
    document.getElementById("skills-cost").textContent =
      debug.last_frame_at ? `models ${debug.model_ms} ms / all ${debug.total_ms} ms` : "";
    chains.replaceChildren();
    for (const skill of debug.skills) {
      const box = el("div", "skill");
      box.dataset.skill = skill.id;
      const head = el("div", "skill-head");
      head.append(el("h2", "", skill.id), el("span", "pill", skill.status));
      if (skill.reason) head.append(el("span", "skill-reason", skill.reason));
      box.append(head);
      const chain = el("div", "chain");
      skill.blocks.forEach((b, i) => {
        if (i > 0) chain.append(el("span", "arrow", "→"));
        const card = el("div", `block cat-${b.category}`);
        card.dataset.block = b.id;
        card.append(el("h3", "", `${b.id} · ${b.type}`));
        card.append(el("div", "meta", `${b.input ? "from " + b.input + " · " : ""}${ago(b.at)} · ${b.ms} ms · ${b.runs} runs`));
        card.append(el("pre", "output", b.output.length ? b.output.map((o) => JSON.stringify(o)).join("\n") : "(nothing)"));
        const hook = skill.webhooks && skill.webhooks[b.id];
        if (hook) card.append(el("div", "meta", `pending ${hook.pending} · sent ${hook.sent}${hook.last_error ? " · " + hook.last_error : ""}`));
        chain.append(card);
      });
      box.append(chain);
      chains.append(box);
    }
  }

  async function refresh() {
    try {
      draw(await SW.api("GET", view.dataset.debug));
    } catch (err) {
      chains.textContent = err.message;
    }
  }

  async function load() {
    const data = await SW.api("GET", view.dataset.api);
    if (editor) editor.value = data.yaml;
  }

  document.getElementById("skills-save")?.addEventListener("click", async () => {
    errorBox.textContent = "";
    try {
      const data = await SW.api("PUT", view.dataset.api, { yaml: editor.value });
      editor.value = data.yaml;
      SW.toast("Skills saved: running from the next frame", "ok");
      refresh();
    } catch (err) {
      errorBox.textContent = err.message;
    }
  });

  load();
  refresh();
  setInterval(refresh, 1000);
})();
