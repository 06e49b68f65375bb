/* Users (admins): add accounts with a role, change a role, set a password, remove an account. */
"use strict";
(() => {
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
  const name = (u) => encodeURIComponent(u.username);

  async function act(promise, done) {
    try { await promise; SW.toast(done, "ok"); load(); } catch (err) { SW.toast(err.message, "error"); load(); }
  }

  async function load() {
    const data = await SW.api("GET", "/api/v1/users");
    document.getElementById("user-rows").replaceChildren(...data.items.map((u) => {
      const role = SW.h("select", { "aria-label": `Role of ${u.username}`, onchange: (ev) =>
        act(SW.api("PATCH", `/api/v1/users/${name(u)}`, { role: ev.target.value }), `${u.username} is now ${ev.target.value}`) },
      ...data.roles.map((r) => SW.h("option", r === u.role ? { value: r, selected: "" } : { value: r }, r)));
      const passwd = SW.h("button", { type: "button", class: "btn small", text: "Set password", onclick: () => {
        const pw = window.prompt(`New password for ${u.username} (ends their sessions and API tokens):`);
        if (pw) act(SW.api("PATCH", `/api/v1/users/${name(u)}`, { password: pw }), `Password of ${u.username} set`);
      } });
      const remove = SW.h("button", { type: "button", class: "btn small danger", text: "Remove", onclick: () => {
        if (window.confirm(`Remove ${u.username}?`)) act(SW.api("DELETE", `/api/v1/users/${name(u)}`), `Removed ${u.username}`);
      } });
      return SW.h("tr", { "data-user": u.username }, SW.h("td", { text: u.username }), SW.h("td", {}, role),
        SW.h("td", { class: "hide-narrow", text: when(u.created) }), SW.h("td", {}, passwd, " ", remove));
    }));
  }

  document.getElementById("new-user").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      await SW.api("POST", "/api/v1/users", { username: f.username.value.trim(), password: f.password.value, role: f.role.value });
      SW.toast(`Added ${f.username.value.trim()}`, "ok");
      f.reset();
      load();
    } catch (err) { SW.toast(err.message, "error"); }
  });
  load().catch((err) => SW.toast(err.message, "error"));
})();
