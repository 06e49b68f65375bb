/* Projects: the new-project form (name, task, labels with descriptions) and the list with switch buttons. */
"use strict";
(() => {
  const { api, toast, h } = SW;

  const form = document.getElementById("project-form");
  if (form) {
    const rows = document.getElementById("label-rows");
    const noneName = form.dataset.noneLabel;
    const noneOffer = document.getElementById("none-offer");
    const errorBox = document.getElementById("form-error");

    function addRow(name = "", description = "") {
      const row = h("div", { class: "label-row" },
        h("input", { name: "label", value: name, maxlength: "64", placeholder: "label, e.g. low_stock", "aria-label": "Label name" }),
        h("input", { name: "description", value: description, maxlength: "2000", placeholder: "what it means (optional)", "aria-label": "Label description" }),
        h("button", { type: "button", class: "btn ghost small", "aria-label": "Remove this label", text: "✕", onclick: () => row.remove() }));
      rows.append(row);
      return row;
    }
    addRow("low_stock", "a shelf area with little or no stock");

    // The none class means "none of the others" for a classifier; a detector's photos without boxes say that already.
    function syncNone() {
      const task = form.querySelector('input[name="task"]:checked').value;
      noneOffer.hidden = task !== "classification";
    }
    form.querySelectorAll('input[name="task"]').forEach((r) => r.addEventListener("change", syncNone));
    syncNone();
    document.getElementById("add-label").addEventListener("click", () => addRow().querySelector("input").focus());

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      errorBox.hidden = true;
      const task = form.querySelector('input[name="task"]:checked').value;
      const labels = [...rows.querySelectorAll(".label-row")]
        .map((r) => ({ name: r.querySelector('[name="label"]').value.trim(), description: r.querySelector('[name="description"]').value.trim() }))
        .filter((l) => l.name);
      if (task === "classification" && document.getElementById("add-none").checked && !labels.some((l) => l.name.toLowerCase() === noneName.toLowerCase())) {
        labels.push({ name: noneName, description: "none of the other labels" });
      }
      const name = form.name.value.trim();
      if (!name) { errorBox.textContent = "Give the project a name."; errorBox.hidden = false; form.name.focus(); return; }
      try {
        const project = await api("POST", "/api/v1/projects", { name, task, labels });
        STUDIO.setProject(project.id);
        toast(`Project ${project.name} created`, "ok");
        location.href = "/live";
      } catch (err) { errorBox.textContent = err.message; errorBox.hidden = false; }
    });
  }

  const table = document.getElementById("project-rows");
  if (table) {
    const taskText = { classification: "classify zones or images", detection: "detect boxes", auto: "not chosen" };
    api("GET", "/api/v1/projects").then((data) => {
      const current = STUDIO.currentProject();
      table.replaceChildren(...data.items.map((p) => h("tr", {},
        h("td", {}, h("b", { text: p.name }), p.default ? h("span", { class: "muted", text: " (default)" }) : null,
          h("span", { class: "muted project-labels", text: `${taskText[p.task] || p.task}: ${p.labels.map((l) => l.name).join(", ") || "–"}` })),
        h("td", { class: "col-task", text: taskText[p.task] || p.task }),
        h("td", { class: "col-labels", text: p.labels.map((l) => l.name).join(", ") || "–" }),
        h("td", { class: "stat", text: String(p.images) }),
        h("td", {}, p.id === current ? h("span", { class: "pill ok", text: "current" })
          : h("button", { type: "button", class: "btn small", text: "Switch to", onclick: () => { STUDIO.setProject(p.id); location.reload(); } })))));
    }).catch((err) => toast(err.message, "error"));
  }
})();
