/* Account: change the password, create and revoke API tokens. */
"use strict";
(() => {
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "never");

  async function load() {
    const data = await SW.api("GET", "/api/v1/auth/tokens");
    document.getElementById("token-rows").replaceChildren(...data.items.map((t) => {
      const revoke = t.revoked
        ? SW.h("span", { class: "pill", text: "revoked" })
        : SW.h("button", { type: "button", class: "btn small danger", text: "Revoke", onclick: async () => {
          try { await SW.api("DELETE", `/api/v1/auth/tokens/${t.id}`); SW.toast(`Revoked ${t.name}`, "ok"); load(); }
          catch (err) { SW.toast(err.message, "error"); }
        } });
      return SW.h("tr", { "data-token": t.id }, SW.h("td", { text: t.name }), SW.h("td", { class: "hide-narrow", text: when(t.created) }),
        SW.h("td", { text: when(t.last_used) }), SW.h("td", {}, revoke));
    }));
  }

  document.getElementById("new-token").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const res = await SW.api("POST", "/api/v1/auth/tokens", { name: ev.target.name.value.trim() });
      const box = document.getElementById("new-token-value");
      box.hidden = false;
      box.replaceChildren("New token (copy it now, it is not shown again): ", SW.h("code", { text: res.token }));
      ev.target.reset();
      load();
    } catch (err) { SW.toast(err.message, "error"); }
  });
  document.getElementById("change-password").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      const res = await SW.api("POST", "/api/v1/auth/password", { current_password: f.current_password.value, new_password: f.new_password.value });
      f.reset();
      SW.toast(`Password changed; ${res.tokens_revoked} API token(s) revoked`, "ok");
      setTimeout(() => window.location.reload(), 800);  // the page's CSRF token belonged to the ended session
    } catch (err) { SW.toast(err.message, "error"); }
  });
  load().catch((err) => SW.toast(err.message, "error"));
})();
