/* Shared helpers of every studio page: API calls with the CSRF token, toasts, small DOM helpers. */
"use strict";
const SW = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  /** Call the JSON API; resolves to the parsed body, rejects with an Error carrying the server's message. */
  async function api(method, url, body, opts = {}) {
    const headers = { "X-CSRF-Token": csrf(), Accept: "application/json" };
    let payload = body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const resp = await fetch(url, { method, headers, body: payload, credentials: "same-origin", ...opts });
    if (resp.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("signed out");
    }
    const type = resp.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await resp.json() : null;
    if (!resp.ok) {
      const err = new Error((data && data.error) || `${resp.status} ${resp.statusText}`);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function toast(message, kind = "") {
    const box = document.getElementById("toasts");
    const el = document.createElement("div");
    el.className = "toast " + kind;
    el.textContent = message;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    box.appendChild(el);
    // At most three at a time: a burst of captures or saves must not bury the page.
    while (box.children.length > 3) box.firstElementChild.remove();
    setTimeout(() => el.remove(), kind === "error" ? 7000 : kind === "ok" ? 2000 : 3500);
  }

  /** Create an element: h("div", {class: "x", onclick: fn}, child, "text"). */
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "style") el.setAttribute("style", v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
    return el;
  }

  /** JSON data a template put in <script type="application/json" id="...">. */
  function pageData(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  /** A stable colour per label name, used when the label has none. */
  function colorFor(name, given) {
    if (given) return given;
    let hash = 0;
    for (const ch of String(name)) hash = (hash * 31 + ch.charCodeAt(0)) | 0;
    return `hsl(${Math.abs(hash) % 360} 70% 45%)`;
  }

  /** A span of time people read: "45 s", "12 min", "3 h 12 min", "2 d 4 h"; with `withSeconds`, under ten
      minutes keeps its seconds ("4 min 12 s"). */
  function duration(seconds, withSeconds = false) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60), hrs = Math.floor(m / 60), d = Math.floor(hrs / 24);
    if (d) return `${d} d ${hrs % 24} h`;
    if (hrs) return `${hrs} h ${m % 60} min`;
    return `${m} min${withSeconds && s % 60 && m < 10 ? ` ${s % 60} s` : ""}`;
  }

  return { api, toast, h, pageData, colorFor, duration };
})();
