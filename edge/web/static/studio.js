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
  return { currentProject, setProject };
})();
