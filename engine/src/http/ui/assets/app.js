// dagforge dashboard: the shared helpers and the list pages (runs, workflows, schedules).
// Plain JavaScript, no build step. Data is put in the page with textContent only; the
// HTML fragments fetched from the server are rendered there, escaped.
'use strict';

(function () {
  const meta = (name) => {
    const m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.content : null;
  };
  const DF = (window.DF = {});
  DF.csrf = meta('csrf-token');
  DF.operator = meta('role') === 'operator';

  // A call to the API: { ok, status, data } (data: the JSON answer or the problem).
  DF.api = async function (method, url, body) {
    const headers = { Accept: 'application/json' };
    if (DF.csrf) headers['X-CSRF-Token'] = DF.csrf;
    const init = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(url, init);
    } catch (e) {
      return { ok: false, status: 0, data: { detail: 'the server cannot be reached' } };
    }
    const text = await r.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { detail: text.slice(0, 300) }; }
    }
    return { ok: r.ok, status: r.status, data };
  };

  DF.problemText = (p) => (p && (p.detail || p.title)) || 'the request failed';

  // An element: attributes set as strings, children as text unless nodes.
  DF.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  };

  DF.badge = (state) => DF.el('span', { class: 'badge st-' + state, 'data-state': state, text: state });

  let toastTimer = null;
  DF.toast = function (text, bad) {
    const t = document.getElementById('toast');
    if (!t) return;
    t.textContent = text;
    t.className = bad ? 'bad' : 'good';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
  };

  // An HTML fragment rendered (and escaped) by the server, as an element.
  DF.fragment = function (html) {
    const t = document.createElement('template');
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  };

  // A Server-Sent Events stream: `on(type, data, seq)` for each event; the browser
  // reconnects by itself with Last-Event-ID.
  DF.stream = function (url, on) {
    const es = new EventSource(url, { withCredentials: true });
    // `end`: the run is over and the stream said all; no reconnecting.
    es.addEventListener('end', () => es.close());
    for (const type of ['run', 'node', 'log', 'progress', 'message']) {
      es.addEventListener(type, (m) => {
        let data;
        try { data = JSON.parse(m.data); } catch (_) { return; }
        on(type, data, m.lastEventId);
      });
    }
    return es;
  };

  DF.confirmAct = (text) => window.confirm(text);

  // --- log out ---------------------------------------------------------------
  function logout() {
    const b = document.getElementById('logout');
    if (!b) return;
    // Either role may end its session; the login form follows only once the server
    // has ended it (401: it had ended already), else its answer is shown.
    b.addEventListener('click', async () => {
      b.disabled = true;
      const r = await DF.api('DELETE', '/api/v1/session');
      b.disabled = false;
      if (r.ok || r.status === 401) window.location.href = '/login';
      else DF.toast('log out failed: ' + DF.problemText(r.data), true);
    });
  }

  // --- runs page: rows appear and change live ---------------------------------
  function runsPage() {
    const table = document.getElementById('runs');
    if (!table) return;
    const tbody = table.tBodies[0];
    const filter = table.dataset.filter || '';
    const insert = table.dataset.live === 'insert';
    const due = new Map(); // run id -> refresh wanted
    let timer = null;
    const refresh = async (id) => {
      const r = await fetch('/ui/rows/' + encodeURIComponent(id) + (filter ? '?' + filter : ''), {
        credentials: 'same-origin',
      });
      if (r.status !== 200) return;
      const row = DF.fragment(await r.text());
      if (!row) return;
      const old = tbody.querySelector('tr[data-run="' + CSS.escape(id) + '"]');
      if (old) old.replaceWith(row);
      else if (insert) {
        tbody.prepend(row);
        const none = document.getElementById('no-runs');
        if (none) none.remove();
      }
    };
    const flush = () => {
      timer = null;
      const ids = [...due.keys()];
      due.clear();
      for (const id of ids.slice(0, 50)) refresh(id);
    };
    const want = (id) => {
      due.set(id, true);
      if (!timer) timer = setTimeout(flush, 400);
    };
    const wf = new URLSearchParams(filter).get('workflow');
    DF.stream('/api/v1/events' + (wf ? '?workflow=' + encodeURIComponent(wf) : ''), (type, d) => {
      if (!d || !d.run) return;
      const row = tbody.querySelector('tr[data-run="' + CSS.escape(d.run) + '"]');
      if (type === 'run' && row && d.event && d.event.to) {
        const cell = row.querySelector('td.state');
        if (cell) cell.replaceChildren(DF.badge(d.event.to));
      }
      if (row || (insert && type === 'run')) want(d.run);
    });
  }

  // --- workflow page: the start form ----------------------------------------------
  function startForm() {
    const form = document.getElementById('start-form');
    if (!form) return;
    const fieldError = (field, text) => {
      const e = field.querySelector('.field-error');
      if (e) e.textContent = text || '';
      field.classList.toggle('invalid', !!text);
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const top = document.getElementById('start-error');
      top.textContent = '';
      const inputs = {};
      let bad = false;
      for (const f of form.querySelectorAll('.field')) fieldError(f, '');
      for (const f of form.querySelectorAll('.field[data-param]')) {
        const name = f.dataset.param;
        const kind = f.dataset.kind;
        const input = f.querySelector('input, textarea');
        if (kind === 'bool') { inputs[name] = input.checked; continue; }
        const raw = input.value;
        if (raw.trim() === '') continue;
        if (kind === 'number') {
          const n = Number(raw);
          if (Number.isNaN(n)) { fieldError(f, 'not a number'); bad = true; } else inputs[name] = n;
        } else if (kind === 'text') {
          inputs[name] = raw;
        } else if (kind === 'json') {
          try { inputs[name] = JSON.parse(raw); } catch (e) { fieldError(f, 'not JSON: ' + e.message); bad = true; }
        } else {
          // auto: JSON when it reads as JSON, else the text itself.
          try { inputs[name] = /^\s*[\[{"\d-]|^\s*(true|false|null)\s*$/.test(raw) ? JSON.parse(raw) : raw; }
          catch (_) { inputs[name] = raw; }
        }
      }
      if (bad) return;
      const body = { workflow: form.dataset.workflow, version: form.dataset.version, inputs };
      for (const f of form.querySelectorAll('.field[data-option]')) {
        const v = f.querySelector('input').value.trim();
        if (v === '') continue;
        const key = f.dataset.option;
        body[key] = key === 'priority' || key === 'delay_ms' ? Number(v) : v;
      }
      const button = document.getElementById('start');
      button.disabled = true;
      const r = await DF.api('POST', '/api/v1/runs', body);
      button.disabled = false;
      if (r.ok && r.data && r.data.id) {
        window.location.href = '/runs/' + encodeURIComponent(r.data.id);
        return;
      }
      // Problem details: put the message next to the field the culprit names.
      const culprit = (r.data && r.data.culprit) || '';
      const m = culprit.match(/^(?:body\.)?inputs\.([^.[\]]+)/) || culprit.match(/^body\.([a-z_]+)$/);
      const field = m && (form.querySelector('.field[data-param="' + CSS.escape(m[1]) + '"]') ||
        form.querySelector('.field[data-option="' + CSS.escape(m[1]) + '"]'));
      if (field) fieldError(field, DF.problemText(r.data));
      else top.textContent = DF.problemText(r.data);
    });
  }

  // --- schedules page: enable, disable, trigger, remove ------------------------
  function schedules() {
    const table = document.getElementById('schedules');
    if (!table) return;
    table.addEventListener('click', async (ev) => {
      const b = ev.target.closest('button[data-sched]');
      if (!b) return;
      const id = b.closest('tr').dataset.schedule;
      const act = b.dataset.sched;
      const url = '/api/v1/schedules/' + encodeURIComponent(id);
      if (act === 'remove' && !DF.confirmAct('Remove schedule ' + id + '?')) return;
      if (act === 'trigger' && !DF.confirmAct('Start a run of schedule ' + id + ' now?')) return;
      const r = act === 'remove' ? await DF.api('DELETE', url) : await DF.api('POST', url + '/' + act);
      if (!r.ok) { DF.toast(DF.problemText(r.data), true); return; }
      DF.toast(act === 'trigger' ? 'started run ' + ((r.data && r.data.id) || '') : id + ': ' + act + 'd');
      // Patch the row: no reload.
      const row = b.closest('tr');
      if (act === 'remove') {
        row.remove();
      } else if (act === 'enable' || act === 'disable') {
        const on = act === 'enable';
        row.querySelector('td.enabled').textContent = on ? 'yes' : 'no';
        b.dataset.sched = on ? 'disable' : 'enable';
        b.textContent = on ? 'Disable' : 'Enable';
      }
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    logout();
    runsPage();
    startForm();
    schedules();
  });
})();
