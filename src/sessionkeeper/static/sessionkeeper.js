/*! sessionkeeper browser client: warn before the session times out, let the user extend it,
 * say so when it has ended. Server-authoritative: every time shown comes from the server's
 * status endpoint or the Session-Expires header, counted down with this tab's clock.
 * No build step, no dependencies, ES2020. Served at <expiry_endpoints>/client.js.
 *
 *   <script src="/_session/client.js" data-warn-before="60" data-sign-in-url="/login?next={next}" defer></script>
 *
 * or, with data-manual on the tag, sessionkeeper.start({...options}). See docs/expiry.md.
 *
 * Rules kept here:
 * - Only real user activity (keydown, input, pointerdown) or the "Stay signed in" button may
 *   extend the session; a tab being open never does (the status poll is read-only on the
 *   server). Activity extends at most once per activityThrottle seconds, across all tabs.
 * - One tab polls (the leader: a Web Lock, or a localStorage lease where locks are missing);
 *   tabs share what they learn over a BroadcastChannel (or `storage` events).
 * - The user always gets at least 20 seconds to answer the warning (WCAG 2.2 SC 2.2.1).
 */
(() => {
  "use strict";
  const MIN_WARN = 20;
  const DEFAULT_MESSAGES = {
    warningTitle: "Are you still there?",
    warningBody: "For your security you will be signed out in {time}.",
    stay: "Stay signed in",
    signOut: "Sign out",
    reauthTitle: "Your session is about to end",
    reauthBody: "Sessions last a limited time, and this one ends in {time}. Sign in again to keep working.",
    reauth: "Sign in again",
    endedTitle: "You have been signed out",
    endedExpired: "Your session ended after a period of inactivity.",
    endedRevoked: "Your session was ended on the server, from another device or tab.",
    endedSignout: "You signed out in another tab.",
    endedDrafts: "What you typed is kept on this device and comes back after you sign in.",
    signIn: "Sign in again",
    close: "Close",
    announce: "{time} left before you are signed out.",
    restored: "Your unsaved changes were restored.",
  };

  function formatTime(seconds) {
    const s = Math.max(0, Math.ceil(seconds));
    const m = Math.floor(s / 60);
    const rest = s % 60;
    const sec = `${rest} second${rest === 1 ? "" : "s"}`;
    return m ? `${m} minute${m === 1 ? "" : "s"}${rest ? " " + sec : ""}` : sec;
  }

  function fill(template, seconds, fmt) {
    return template.replace("{time}", fmt(seconds));
  }

  // Session-Expires: idle=<epoch>, absolute=<epoch>  (RFC 8941 dictionary of integers)
  function parseHeader(value) {
    if (!value) return null;
    const out = {};
    for (const part of value.split(",")) {
      const m = /^\s*(idle|absolute)=(\d{1,15})\s*$/.exec(part);
      if (!m || m[1] in out) return null;
      out[m[1]] = Number(m[2]);
    }
    return "idle" in out && "absolute" in out && out.idle <= out.absolute ? out : null;
  }

  function start(userOptions = {}) {
    const o = { ...userOptions };
    const endpoint = String(o.endpoint || "/_session").replace(/\/+$/, "");
    const warnBefore = Math.max(MIN_WARN, Number(o.warnBefore) || 120);
    const pollInterval = Math.max(5, Number(o.pollInterval) || 60);
    const throttle = Math.max(5, Number(o.activityThrottle) || 60);
    const messages = { ...DEFAULT_MESSAGES, ...(o.messages || {}) };
    const fmt = typeof o.formatTime === "function" ? o.formatTime : formatTime;
    const signInUrl = o.signInUrl || "/login?next={next}";
    const keepDrafts = o.keepDrafts !== false; // forms still opt in one by one
    const draftMaxAge = (Number(o.draftMaxAge) || 86400) * 1000;
    const name = "sessionkeeper:" + endpoint;
    // On the sign-in page itself the user is already doing what the dialog would ask.
    const onSignIn = new URL(signInUrl.replace("{next}", ""), location.href).pathname === location.pathname;
    const me = Math.random().toString(36).slice(2);

    // What this tab believes; times in this tab's clock (ms).
    const st = { active: false, auth: false, idleAt: 0, absAt: 0, offset: 0, ended: false };
    let leader = false;
    let lastExtend = Date.now();
    let checking = false;
    let nextPoll = 0;
    let dialog = null;
    let mode = null; // "warning" | "reauth" | "ended"
    let lastAnnounced = -1;
    let returnFocus = null;
    let dismissed = false; // the re-auth notice was closed with Escape: do not reopen it

    // ---- server ---------------------------------------------------------------------------
    async function call(path, method) {
      const init = { method, credentials: "same-origin", cache: "no-store", headers: {} };
      if (method === "POST") init.headers["X-Requested-With"] = "sessionkeeper";
      const r = await origFetch(endpoint + path, init);
      if (!r.ok) throw new Error(`sessionkeeper: ${path} answered ${r.status}`);
      return r.json();
    }

    function fromStatus(s) {
      const now = Date.now();
      if (!s.active) return { active: false, auth: false, idleAt: 0, absAt: 0, offset: st.offset };
      return {
        active: true, auth: !!s.authenticated,
        idleAt: now + s.idle_remaining * 1000, absAt: now + s.absolute_remaining * 1000,
        offset: s.now * 1000 - now,
      };
    }

    async function status() {
      try {
        return fromStatus(await call("/status", "GET"));
      } catch (e) {
        return null; // network trouble: keep counting down with what we know
      }
    }

    // ---- tabs -------------------------------------------------------------------------------
    const channel = "BroadcastChannel" in window ? new BroadcastChannel(name) : null;
    function send(msg) {
      msg.from = me;
      if (channel) channel.postMessage(msg);
      else {
        try {
          localStorage.setItem(name + ":msg", JSON.stringify({ ...msg, nonce: Math.random() }));
        } catch (e) { /* storage off: tabs stay independent */ }
      }
    }
    function receive(msg) {
      if (!msg || msg.from === me) return;
      if (msg.t === "state") {
        if (msg.extended) lastExtend = Date.now();
        if (msg.s.active && msg.s.auth) apply(msg.s, false);
        else if (st.auth && !st.ended) confirmEnd(msg.reason || "revoked");
      } else if (msg.t === "ended" && st.auth && !st.ended) {
        end(msg.reason, false);
      }
    }
    if (channel) channel.onmessage = (ev) => receive(ev.data);
    else window.addEventListener("storage", (ev) => {
      if (ev.key === name + ":msg" && ev.newValue) {
        try { receive(JSON.parse(ev.newValue)); } catch (e) { /* not ours */ }
      }
    });

    function electLeader() {
      if (navigator.locks && navigator.locks.request) {
        navigator.locks.request(name + ":leader", () => {
          leader = true;
          nextPoll = 0;
          return new Promise(() => {}); // held until this tab goes away
        });
        return;
      }
      const key = name + ":leader";
      const renew = () => {
        const now = Date.now();
        let lease = null;
        try { lease = JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { lease = null; }
        if (!lease || lease.id === me || lease.until < now) {
          try { localStorage.setItem(key, JSON.stringify({ id: me, until: now + pollInterval * 2000 })); } catch (e) { /* */ }
          try { lease = JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { lease = null; }
        }
        leader = !!lease && lease.id === me;
      };
      renew();
      setInterval(renew, pollInterval * 1000);
      window.addEventListener("pagehide", () => {
        try {
          const lease = JSON.parse(localStorage.getItem(key) || "null");
          if (lease && lease.id === me) localStorage.removeItem(key);
        } catch (e) { /* */ }
      });
    }

    // ---- state changes ---------------------------------------------------------------------
    function apply(s, share, extended) {
      const was = st.auth && !st.ended;
      Object.assign(st, s);
      if (!s.active || !s.auth) {
        if (was) end("revoked", share);
        return;
      }
      st.ended = false;
      if (share) send({ t: "state", s, extended: !!extended });
      if (mode && mode !== "ended" && st.idleAt - Date.now() > warnBefore * 1000 && !nearAbsolute()) close();
      tick();
    }

    async function confirmEnd(reason) {
      if (checking) return;
      checking = true;
      const s = await status();
      checking = false;
      if (s === null) return;
      if (s.active && s.auth) apply(s, false);
      else end(reason, false);
    }

    async function extend() {
      try {
        const s = fromStatus(await call("/extend", "POST"));
        lastExtend = Date.now();
        if (s.active && s.auth) {
          apply(s, true, true);
          fire("extended", { idleExpiresIn: (s.idleAt - Date.now()) / 1000 });
        } else {
          end("revoked", true);
        }
      } catch (e) {
        /* keep the dialog: the user can try again */
      }
    }

    async function signOut() {
      try { await call("/end", "POST"); } catch (e) { /* ended locally all the same */ }
      clearDrafts();
      send({ t: "ended", reason: "signout" });
      st.auth = false;
      st.ended = true;
      fire("expired", { reason: "signout", here: true });
      close();
      if (o.signedOutUrl) window.location.assign(o.signedOutUrl);
      else window.location.reload();
    }

    function end(reason, share) {
      if (st.ended) return;
      st.ended = true;
      st.active = false;
      const kept = reason !== "signout" && saveDrafts();
      if (share) send({ t: "ended", reason });
      if (fire("expired", { reason, draftsKept: kept })) show("ended", reason, kept);
      else close();
    }

    function nearAbsolute() {
      return st.absAt - Date.now() <= warnBefore * 1000 + 1000;
    }

    function fire(type, detail) {
      const ev = new CustomEvent("sessionkeeper:" + type, { detail, cancelable: true });
      return document.dispatchEvent(ev); // false: the app shows its own UI
    }

    // ---- the clock ---------------------------------------------------------------------------
    function tick() {
      if (!st.auth || st.ended) return;
      const now = Date.now();
      const left = (st.idleAt - now) / 1000;
      if (leader && (now >= nextPoll || (left <= warnBefore + 1 && !mode && now >= nextPoll - pollInterval * 500))) {
        nextPoll = now + pollInterval * 1000;
        status().then((s) => {
          if (s === null) return;
          if (s.active && s.auth) apply(s, true);
          else {
            send({ t: "state", s, reason: "revoked" });
            end(left <= 0 ? "expired" : "revoked", false);
          }
        });
      }
      if (left <= 0) {
        confirmEnd("expired");
        return;
      }
      if (left <= warnBefore && !onSignIn) {
        const reauth = nearAbsolute();
        const want = reauth ? "reauth" : "warning";
        if (mode !== want && !(want === "reauth" && dismissed)) {
          if (fire("warning", { remaining: left, reauthenticate: reauth })) show(want);
          else mode = want;
        }
        update(left);
      }
    }

    // ---- activity ----------------------------------------------------------------------------
    function activity() {
      if (!st.auth || st.ended || mode) return; // in the dialog, only its buttons count
      if (Date.now() - lastExtend < throttle * 1000) return;
      lastExtend = Date.now();
      extend();
    }
    for (const type of ["keydown", "input", "pointerdown"]) {
      document.addEventListener(type, (ev) => { if (ev.isTrusted) activity(); }, { capture: true, passive: true });
    }

    // ---- Session-Expires on the page's own fetches -----------------------------------------
    const origFetch = window.fetch.bind(window);
    if (o.watchFetch !== false) {
      window.fetch = async (...args) => {
        const r = await origFetch(...args);
        try {
          const e = parseHeader(r.headers.get("Session-Expires"));
          if (e && st.auth && !st.ended) {
            const idleAt = e.idle * 1000 - st.offset;
            const absAt = e.absolute * 1000 - st.offset;
            apply({ ...st, active: true, auth: true, idleAt, absAt }, true, idleAt > st.idleAt + 1000);
          }
        } catch (err) { /* never break the app's fetch */ }
        return r;
      };
    }

    // ---- drafts (forms with data-sessionkeeper-draft="name") ----------------------------------
    const draftKey = (form) => `${name}:draft:${location.pathname}:${form.dataset.sessionkeeperDraft || form.id || "form"}`;
    const keepable = (el) => el.name && !el.disabled &&
      !["password", "hidden", "file", "submit", "button", "reset", "image"].includes(el.type) &&
      el.autocomplete !== "off" && el.autocomplete !== "one-time-code";
    function draftForms() {
      return keepDrafts ? Array.from(document.querySelectorAll("form[data-sessionkeeper-draft]")) : [];
    }
    function saveDrafts() {
      let kept = false;
      for (const form of draftForms()) {
        const fields = {};
        for (const el of form.elements) {
          if (!keepable(el)) continue;
          if (el.type === "checkbox" || el.type === "radio") {
            if (el.checked) (fields[el.name] = fields[el.name] || []).push(el.value);
          } else if (el.value) fields[el.name] = el.value;
        }
        if (!Object.keys(fields).length) continue;
        try {
          localStorage.setItem(draftKey(form), JSON.stringify({ at: Date.now(), fields }));
          kept = true;
        } catch (e) { /* storage full or off */ }
      }
      return kept;
    }
    function restoreDrafts() {
      for (const form of draftForms()) {
        const key = draftKey(form);
        let draft = null;
        try { draft = JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { draft = null; }
        if (!draft) continue;
        localStorage.removeItem(key);
        if (Date.now() - draft.at > draftMaxAge) continue;
        for (const el of form.elements) {
          if (!keepable(el) || !(el.name in draft.fields)) continue;
          const v = draft.fields[el.name];
          if (el.type === "checkbox" || el.type === "radio") el.checked = Array.isArray(v) && v.includes(el.value);
          else el.value = v;
        }
        fire("restored", { form });
      }
    }
    function clearDrafts() {
      try {
        for (let i = localStorage.length - 1; i >= 0; i--) {
          const k = localStorage.key(i);
          if (k && k.startsWith(name + ":draft:")) localStorage.removeItem(k);
        }
      } catch (e) { /* */ }
    }

    // ---- the dialog ---------------------------------------------------------------------------
    function el(tag, cls, text) {
      const e = document.createElement(tag);
      if (cls) e.className = cls;
      if (text) e.textContent = text;
      return e;
    }
    function button(text, cls, action) {
      const b = el("button", cls, text);
      b.type = "button";
      b.addEventListener("click", action);
      return b;
    }
    function build() {
      const d = el("dialog", "sk-dialog");
      d.setAttribute("role", "alertdialog");
      d.setAttribute("aria-modal", "true");
      d.setAttribute("aria-labelledby", "sk-title");
      d.setAttribute("aria-describedby", "sk-body");
      d.append(el("h2", "sk-title"), el("p", "sk-body"), el("p", "sk-note"), el("div", "sk-actions"));
      d.querySelector(".sk-title").id = "sk-title";
      d.querySelector(".sk-body").id = "sk-body";
      const live = el("p", "sk-live");
      live.setAttribute("aria-live", "polite");
      live.setAttribute("aria-atomic", "true");
      d.append(live);
      d.addEventListener("cancel", (ev) => { // Escape
        ev.preventDefault();
        if (mode === "warning") extend();
        else {
          if (mode === "reauth") dismissed = true;
          close();
        }
      });
      d.addEventListener("keydown", (ev) => { // keep Tab inside
        if (ev.key !== "Tab") return;
        const items = Array.from(d.querySelectorAll("button"));
        if (!items.length) return;
        const first = items[0];
        const last = items[items.length - 1];
        if (ev.shiftKey && document.activeElement === first) { ev.preventDefault(); last.focus(); }
        else if (!ev.shiftKey && document.activeElement === last) { ev.preventDefault(); first.focus(); }
        else if (!d.contains(document.activeElement)) { ev.preventDefault(); first.focus(); }
      });
      document.body.append(d);
      return d;
    }
    function next() {
      return encodeURIComponent(location.pathname + location.search);
    }
    function reauthenticate() {
      saveDrafts();
      window.location.assign(signInUrl.replace("{next}", next()));
    }
    function show(want, reason, kept) {
      dialog = dialog || build();
      if (!mode) returnFocus = document.activeElement;
      mode = want;
      lastAnnounced = -1;
      const title = dialog.querySelector(".sk-title");
      const body = dialog.querySelector(".sk-body");
      const note = dialog.querySelector(".sk-note");
      const actions = dialog.querySelector(".sk-actions");
      actions.textContent = "";
      note.textContent = "";
      dialog.dataset.mode = want;
      let primary;
      if (want === "ended") {
        title.textContent = messages.endedTitle;
        body.textContent = { signout: messages.endedSignout, expired: messages.endedExpired }[reason] || messages.endedRevoked;
        if (kept) note.textContent = messages.endedDrafts;
        primary = button(messages.signIn, "sk-primary", () => window.location.assign(signInUrl.replace("{next}", next())));
        actions.append(primary, button(messages.close, "sk-secondary", close));
        dialog.querySelector(".sk-live").textContent = "";
      } else if (want === "reauth") {
        title.textContent = messages.reauthTitle;
        primary = button(messages.reauth, "sk-primary", reauthenticate);
        actions.append(primary, button(messages.signOut, "sk-secondary", signOut));
      } else {
        title.textContent = messages.warningTitle;
        primary = button(messages.stay, "sk-primary", extend);
        actions.append(primary, button(messages.signOut, "sk-secondary", signOut));
      }
      if (!dialog.open) {
        if (dialog.showModal) dialog.showModal();
        else dialog.setAttribute("open", "");
      }
      primary.focus();
      if (want !== "ended") update((st.idleAt - Date.now()) / 1000);
    }
    function update(left) {
      if (!dialog || !mode || mode === "ended") return;
      const text = mode === "reauth" ? messages.reauthBody : messages.warningBody;
      dialog.querySelector(".sk-body").textContent = fill(text, left, fmt);
      // Announce politely, not every second: when it opens, then every 10 s (5 s near the end).
      const s = Math.ceil(left);
      const step = s <= 10 ? 5 : 10;
      if (lastAnnounced === -1 || (s % step === 0 && s !== lastAnnounced)) {
        lastAnnounced = s;
        dialog.querySelector(".sk-live").textContent = fill(messages.announce, s, fmt);
      }
    }
    function close() {
      mode = null;
      if (dialog && dialog.open) {
        if (dialog.close) dialog.close();
        else dialog.removeAttribute("open");
      }
      if (returnFocus && returnFocus.focus && document.contains(returnFocus)) returnFocus.focus();
      returnFocus = null;
    }

    // ---- go -----------------------------------------------------------------------------------
    const api = {
      extend, signOut,
      get state() { return { ...st, leader, mode }; },
      check: () => confirmEnd("revoked"),
    };
    (async () => {
      const s = await status();
      if (s === null) return;
      Object.assign(st, s);
      send({ t: "state", s });
      document.documentElement.dataset.sessionkeeper = s.auth ? "ready" : "anonymous";
      if (!s.active || !s.auth) return;
      restoreDrafts();
      electLeader();
      nextPoll = Date.now() + pollInterval * 1000;
      setInterval(tick, 1000);
      tick();
    })();
    return api;
  }

  const script = document.currentScript;
  window.sessionkeeper = { start, parseHeader, formatTime };
  if (script && !("manual" in script.dataset)) {
    const d = script.dataset;
    const src = new URL(script.src, location.href);
    window.sessionkeeper.instance = start({
      endpoint: d.endpoint || src.pathname.replace(/\/client\.js$/, ""),
      warnBefore: d.warnBefore, pollInterval: d.pollInterval, activityThrottle: d.activityThrottle,
      signInUrl: d.signInUrl, signedOutUrl: d.signedOutUrl,
      keepDrafts: d.keepDrafts !== "false",
    });
  }
})();
