/* Every studio page: the project switcher in the nav (the current project is a cookie the server reads). */
"use strict";
const STUDIO = (() => {
  const COOKIE = "shelfwatch_project";
  function currentProject() {
    const sel = document.getElementById("project-switch");
    return sel ? Number(sel.value) : null;
  }
  function setProject(id) {
    document.cookie = `${COOKIE}=${encodeURIComponent(id)}; path=/; max-age=${3600 * 24 * 365}; SameSite=Strict`;
  }
  const sel = document.getElementById("project-switch");
  if (sel) {
    sel.addEventListener("change", () => {
      if (sel.value === "new") { location.href = "/projects/new"; return; }
      if (sel.value === "all") { location.href = "/projects"; return; }
      setProject(sel.value);
      location.reload();
    });
  }
  /** A modal question; resolves true when confirmed (the action button, Enter), false on Esc or Cancel. */
  function ask(title, text, action) {
    return new Promise((resolve) => {
      const yes = SW.h("button", { type: "button", class: "btn primary", text: action });
      const no = SW.h("button", { type: "button", class: "btn", text: "Cancel" });
      const dlg = SW.h("dialog", { class: "confirm", "aria-label": title },
        SW.h("h2", { text: title }), SW.h("p", { text }), SW.h("div", { class: "row" }, no, yes));
      const done = (answer) => { dlg.close(); dlg.remove(); resolve(answer); };
      yes.addEventListener("click", () => done(true));
      no.addEventListener("click", () => done(false));
      dlg.addEventListener("cancel", (ev) => { ev.preventDefault(); done(false); });
      document.body.append(dlg);
      dlg.showModal();
      yes.focus();
    });
  }

  /** A toast with an Undo button that restores a trash entry (12 s), then calls `after`. */
  function undoToast(message, trashId, after) {
    if (!trashId) { SW.toast(message, "ok"); return; }
    const box = document.getElementById("toasts");
    const undo = SW.h("button", { type: "button", class: "btn small", text: "Undo" });
    const el = SW.h("div", { class: "toast ok", role: "status" }, message + " ", undo, " ", SW.h("a", { href: "/trash", text: "Trash" }));
    undo.addEventListener("click", async () => {
      undo.disabled = true;
      try {
        const res = await SW.api("POST", `/api/v1/trash/${encodeURIComponent(trashId)}/restore`);
        el.remove();
        SW.toast(`Restored ${res.restored}`, "ok");
        if (after) after(res);
      } catch (err) { SW.toast(err.message, "error"); }
    });
    box.appendChild(el);
    setTimeout(() => el.remove(), 12000);
  }

  // The getting-started checklist follows what the page changes (a capture, a saved tag, zones, a training): one
  // GET after each burst of changes, never polled. The server leaves it out once every step is done.
  const checklistNav = document.querySelector("nav.checklist");
  let refreshChecklist = () => {};
  if (checklistNav) {
    const rawApi = SW.api;
    let timer = null;
    const refresh = async () => {
      try {
        const list = await rawApi("GET", "/api/v1/projects/checklist");
        const links = [...checklistNav.querySelectorAll("a[data-step]")];
        let next = true;
        for (const step of list.steps) {
          const a = links.find((link) => link.dataset.step === step.key);
          if (!a) continue;
          a.className = step.done ? "done" : (next ? "next" : "");
          if (!step.done) next = false;
          a.firstChild.textContent = `${step.done ? "✓" : links.indexOf(a) + 1} ${step.title} `;
          const progress = a.querySelector(".progress-text");
          if (progress) progress.textContent = step.progress;
        }
        checklistNav.hidden = !!list.done;
      } catch (_) { /* the next change tries again */ }
    };
    refreshChecklist = () => { clearTimeout(timer); timer = setTimeout(refresh, 600); };
    SW.api = async (method, url, ...rest) => {
      const out = await rawApi(method, url, ...rest);
      if (method !== "GET") refreshChecklist();
      return out;
    };
  }

  // A page whose change happens elsewhere (a training run ending) asks for the refresh itself.
  return { currentProject, setProject, ask, undoToast, refreshChecklist: () => refreshChecklist() };
})();
