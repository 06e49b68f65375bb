/* Labels: create, rename, describe, recolour, delete (with the store's explanation when a label is in use). */
"use strict";
(() => {
  const page = SW.pageData("labels-page");
  const rows = document.getElementById("label-rows");

  async function load() {
    const data = await SW.api("GET", "/api/v1/labels");
    document.getElementById("other-hint").hidden = !data.suggested_other || data.has_other || data.items.length === 0;
    document.getElementById("labels-empty").hidden = data.items.length > 0;
    rows.replaceChildren(...data.items.map(row));
  }

  async function trainedWarning(name, action) {
    try {
      return (await SW.api("GET", `/api/v1/labels/${encodeURIComponent(name)}/versions`))[action];
    } catch (err) { return null; }
  }

  function row(label) {
    const name = SW.h("input", { value: label.name, "aria-label": `Name of ${label.name}`, maxlength: 64 });
    const desc = SW.h("input", { value: label.description, "aria-label": `Description of ${label.name}`, maxlength: 2000 });
    const color = SW.h("input", { type: "color", value: label.color, "aria-label": `Colour of ${label.name}` });
    async function patch(body) {
      try {
        await SW.api("PATCH", `/api/v1/labels/${encodeURIComponent(label.name)}`, body);
        SW.toast("Saved", "ok");
        load();
      } catch (err) { SW.toast(err.message, "error"); load(); }
    }
    name.addEventListener("change", async () => {
      const warning = await trainedWarning(label.name, "rename"); // versions trained with it (edge/web/assist.py)
      if (warning && !(await STUDIO.ask(`Rename ${label.name}?`, warning, "Rename"))) { load(); return; }
      patch({ name: name.value.trim() });
    });
    desc.addEventListener("change", () => patch({ description: desc.value }));
    color.addEventListener("change", () => patch({ color: color.value }));
    const del = SW.h("button", { type: "button", class: "btn small danger", text: "Delete" });
    // Deleting always asks; what it removes goes to the trash, and the toast's Undo puts it back.
    del.addEventListener("click", async () => {
      const url = `/api/v1/labels/${encodeURIComponent(label.name)}`;
      const used = label.images > 0 || label.boxes > 0;
      const trained = await trainedWarning(label.name, "delete");
      const text = (used
        ? `${label.images} image(s) carry it and ${label.boxes} box(es) use it; they lose it too. You can undo this, or restore it from the Trash.`
        : "No image uses it. You can undo this, or restore it from the Trash.")
        + (trained ? ` ${trained}` : "");
      if (!(await STUDIO.ask(`Delete the label ${label.name}?`, text, "Delete"))) return;
      try {
        const res = await SW.api("DELETE", used ? `${url}?force=true` : url).catch(async (err) => {
          if (err.status !== 409) throw err;
          return SW.api("DELETE", `${url}?force=true`);  // it got used since the page loaded: the user agreed
        });
        STUDIO.undoToast(`Deleted ${label.name}.`, res.trash, load);
      } catch (err) { SW.toast(err.message, "error"); }
      load();
    });
    return SW.h("tr", { "data-label": label.name },
      SW.h("td", {}, color), SW.h("td", {}, name), SW.h("td", {}, desc),
      SW.h("td", { class: "num hide-narrow", text: label.images }), SW.h("td", { class: "num hide-narrow", text: label.boxes }),
      SW.h("td", {}, del));
  }

  document.getElementById("new-label").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    try {
      const body = { name: form.name.value.trim(), description: form.description.value };
      if (form.color.dataset.touched) body.color = form.color.value; // else the store picks the next palette colour
      await SW.api("POST", "/api/v1/labels", body);
      form.reset();
      delete form.color.dataset.touched;
      load();
    } catch (err) { SW.toast(err.message, "error"); }
  });
  document.querySelector('#new-label [name="color"]').addEventListener("input", (ev) => { ev.target.dataset.touched = "1"; });
  document.getElementById("add-other").addEventListener("click", async () => {
    try {
      await SW.api("POST", "/api/v1/labels", { name: page.none_label, description: page.none_description });
      load();
    } catch (err) { SW.toast(err.message, "error"); }
  });
  load().catch((err) => SW.toast(err.message, "error"));
})();
