// dagforge dashboard: the run page. The DAG was drawn by the server; this script
// keeps it live from the run's event stream, applying the events in batches once per
// animation frame as small patches (a class and a counter line per changed box), and
// offers pan, zoom, search by node id and the run's actions.
'use strict';

(function () {
  const DF = window.DF;
  const head = document.getElementById('run');
  const index = JSON.parse(document.getElementById('index').textContent);
  const runId = head.dataset.run;
  const svg = document.getElementById('graph');
  const canvas = document.getElementById('canvas');

  // --- the model ---------------------------------------------------------------
  const pos = new Map(index.ids.map((id, i) => [id, i]));
  const boxEl = [];
  for (const g of svg.querySelectorAll('g.n')) boxEl[Number(g.dataset.b)] = g;
  const members = boxEl.map(() => []);
  index.boxes.forEach((b, i) => members[b].push(i));
  const items = new Map(Object.entries(index.items || {}).map(([k, v]) => [Number(k), v]));
  const states = index.states;
  const tally = {};
  for (const s of states) tally[s] = (tally[s] || 0) + 1;

  // The state a group shows (as the server's graph::aggregate).
  function aggregate(list) {
    let total = 0, failed = 0, active = 0, ok = 0, skipped = 0, pending = 0, cancelled = 0;
    for (const s of list) {
      total++;
      if (s === 'failed' || s === 'timed_out') failed++;
      else if (s === 'running' || s === 'retrying' || s === 'ready') active++;
      else if (s === 'succeeded') ok++;
      else if (s === 'skipped') skipped++;
      else if (s === 'cancelled') cancelled++;
      else pending++;
    }
    if (failed > 0) return 'failed';
    if (active > 0 || (pending > 0 && pending < total && cancelled === 0)) return 'running';
    if (cancelled > 0) return 'cancelled';
    if (pending === total) return 'pending';
    if (ok === 0 && skipped > 0) return 'skipped';
    return 'succeeded';
  }
  function counters(c) {
    const g = (ks) => ks.reduce((n, k) => n + (c[k] || 0), 0);
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    return '✓ ' + g(['succeeded']) + ' ✗ ' + g(['failed', 'timed_out']) + ' ▶ ' +
      g(['running', 'retrying', 'ready']) + ' · ' + total;
  }
  function paint(b) {
    const el = boxEl[b];
    if (!el) return;
    const ms = members[b];
    const list = ms.map((i) => states[i]);
    const st = aggregate(list);
    el.classList.forEach((c) => { if (c.startsWith('st-')) el.classList.remove(c); });
    el.classList.add('st-' + st);
    const sub = el.querySelector('text.sub');
    if (ms.length > 1) {
      const c = {};
      for (const s of list) c[s] = (c[s] || 0) + 1;
      sub.textContent = counters(c);
    } else if (items.has(ms[0])) {
      sub.textContent = counters(items.get(ms[0]));
    } else {
      sub.textContent = st;
    }
  }

  // --- live: events queued, applied once per frame ------------------------------------
  const queue = [];
  let scheduled = false;
  let paused = false;
  const listeners = [];
  DF.onRunEvent = (f) => listeners.push(f);
  DF.runId = runId;
  DF.nodeIndex = pos;

  function apply() {
    scheduled = false;
    if (paused) return;
    const dirty = new Set();
    let runChanged = null;
    for (const d of queue.splice(0, queue.length)) {
      const e = d.event || {};
      if (e.type === 'node') {
        const i = pos.get(e.node);
        if (i === undefined) continue;
        if (e.item === undefined || e.item === null) {
          const old = states[i];
          if (old !== e.to) {
            tally[old] = Math.max(0, (tally[old] || 0) - 1);
            tally[e.to] = (tally[e.to] || 0) + 1;
            states[i] = e.to;
          }
        } else {
          const c = items.get(i) || {};
          if ((c[e.from] || 0) > 0) c[e.from] -= 1;
          c[e.to] = (c[e.to] || 0) + 1;
          items.set(i, c);
        }
        dirty.add(index.boxes[i]);
      } else if (e.type === 'run') {
        runChanged = e.to;
      }
    }
    for (const b of dirty) paint(b);
    if (dirty.size) { paintTally(); miniSoon(); }
    if (runChanged) runState(runChanged);
  }

  function paintTally() {
    const t = document.getElementById('tally');
    const parts = [index.ids.length + ' nodes'];
    t.replaceChildren(parts[0]);
    for (const s of Object.keys(tally).sort()) {
      if (!tally[s]) continue;
      t.append(' · ', DF.badge(s), ' ', DF.el('span', { 'data-count': s, text: tally[s] }));
    }
  }

  const terminal = (s) => s === 'succeeded' || s === 'failed' || s === 'cancelled';
  async function runState(to) {
    head.dataset.state = to;
    document.getElementById('run-state').replaceChildren(DF.badge(to));
    const done = terminal(to);
    const show = (id, on) => { const b = document.getElementById(id); if (b) b.hidden = !on; };
    show('act-cancel', !done);
    show('act-retry', done);
    show('act-retry-failed', done);
    if (done || to === 'running') {
      const r = await DF.api('GET', '/api/v1/runs/' + encodeURIComponent(runId));
      if (r.ok) {
        const put = (id, v) => { const e = document.getElementById(id); if (e) e.textContent = v || '—'; };
        const t = (v) => (v ? String(v).slice(0, 19).replace('T', ' ') : '');
        put('run-started', t(r.data.started_at));
        put('run-finished', t(r.data.finished_at));
        if (r.data.duration_ms != null) put('run-duration', fmtMs(r.data.duration_ms));
      }
    }
  }
  function fmtMs(ms) {
    if (ms < 1000) return ms + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    if (ms < 3600000) return Math.floor(ms / 60000) + ' m ' + String(Math.floor(ms / 1000) % 60).padStart(2, '0') + ' s';
    return Math.floor(ms / 3600000) + ' h ' + String(Math.floor(ms / 60000) % 60).padStart(2, '0') + ' m';
  }
  DF.fmtMs = fmtMs;

  const stream = DF.stream('/api/v1/runs/' + encodeURIComponent(runId) + '/events?after=' +
    encodeURIComponent(head.dataset.seq || '0'), (type, d) => {
    for (const f of listeners) f(type, d);
    if (type !== 'node' && type !== 'run') return;
    queue.push(d);
    if (!scheduled) { scheduled = true; requestAnimationFrame(apply); }
  });
  window.addEventListener('beforeunload', () => stream.close());

  const live = document.getElementById('live');
  live.addEventListener('change', () => {
    paused = !live.checked;
    document.getElementById('live-note').textContent = paused ? 'paused: changes wait' : '';
    if (!paused && queue.length && !scheduled) { scheduled = true; requestAnimationFrame(apply); }
  });

  // --- pan and zoom (a viewBox over the drawing) ---------------------------------------
  const full = { w: Number(svg.getAttribute('width')), h: Number(svg.getAttribute('height')) };
  const view = { x: 0, y: 0, w: full.w, h: full.h };
  function setView() {
    svg.setAttribute('viewBox', view.x + ' ' + view.y + ' ' + view.w + ' ' + view.h);
    miniSoon();
  }
  // Fit: the whole drawing at most at its natural size; a very wide one at a
  // readable scale, centred (pan and zoom for the rest).
  function fit() {
    const cw = canvas.clientWidth || 800;
    const scale = Math.max(Math.min(1, cw / full.w), 0.4);
    const h = Math.min(Math.max(full.h * scale, 160), window.innerHeight * 0.72);
    svg.setAttribute('width', cw);
    svg.setAttribute('height', h);
    view.w = cw / scale;
    view.h = h / scale;
    view.x = (full.w - view.w) / 2;
    view.y = 0;
    setView();
  }
  function zoom(f, cx, cy) {
    const x = cx === undefined ? view.x + view.w / 2 : cx;
    const y = cy === undefined ? view.y + view.h / 2 : cy;
    view.x = x - (x - view.x) * f;
    view.y = y - (y - view.y) * f;
    view.w *= f;
    view.h *= f;
    setView();
  }

  // --- the minimap: every box as a dot of its state's colour, the view as a frame;
  // click or drag on it to move the view. Shown when the drawing is larger than
  // the view.
  const FILL = { pending: '#90a4ae', ready: '#64b5f6', running: '#1e88e5', retrying: '#fb8c00',
    succeeded: '#43a047', failed: '#e53935', timed_out: '#d84315', skipped: '#bdbdbd', cancelled: '#616161', none: '#90a4ae' };
  const at = boxEl.map((el) => {
    const m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(el ? el.getAttribute('transform') : '');
    return m ? [Number(m[1]), Number(m[2])] : [0, 0];
  });
  const mini = document.createElement('canvas');
  mini.className = 'minimap';
  mini.title = 'Minimap: click to move the view';
  canvas.append(mini);
  let miniDue = false;
  function miniSoon() {
    if (miniDue) return;
    miniDue = true;
    requestAnimationFrame(drawMini);
  }
  // Horizontal and vertical scales: uniform while the drawing fits 180 × 240,
  // squashed vertically for a very deep one.
  function miniScale() {
    const kx = Math.min(180 / full.w, 1);
    return [kx, Math.min(kx, 240 / full.h)];
  }
  function drawMini() {
    miniDue = false;
    const larger = view.w < full.w * 0.98 || view.h < full.h * 0.98 || view.x > 1 || view.y > 1;
    mini.hidden = !larger;
    if (!larger) return;
    const [kx, ky] = miniScale();
    mini.width = Math.ceil(full.w * kx);
    mini.height = Math.ceil(full.h * ky);
    const g = mini.getContext('2d');
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, mini.width, mini.height);
    boxEl.forEach((el, b) => {
      if (!el) return;
      const st = [...el.classList].find((c) => c.startsWith('st-'));
      g.fillStyle = FILL[st ? st.slice(3) : 'none'] || FILL.none;
      g.fillRect(at[b][0] * kx, at[b][1] * ky, Math.max(176 * kx, 1.5), Math.max(46 * ky, 1));
    });
    g.strokeStyle = '#ff9800';
    g.lineWidth = 2;
    g.strokeRect(view.x * kx, view.y * ky, view.w * kx, Math.max(view.h * ky, 2));
  }
  function miniMove(ev) {
    const r = mini.getBoundingClientRect();
    const [kx, ky] = miniScale();
    view.x = (ev.clientX - r.left) / kx - view.w / 2;
    view.y = (ev.clientY - r.top) / ky - view.h / 2;
    setView();
  }
  let miniDrag = false;
  mini.addEventListener('pointerdown', (ev) => { miniDrag = true; mini.setPointerCapture(ev.pointerId); miniMove(ev); });
  mini.addEventListener('pointermove', (ev) => { if (miniDrag) miniMove(ev); });
  mini.addEventListener('pointerup', () => { miniDrag = false; });

  fit();
  document.getElementById('zoom-in').addEventListener('click', () => zoom(0.8));
  document.getElementById('zoom-out').addEventListener('click', () => zoom(1.25));
  document.getElementById('zoom-fit').addEventListener('click', fit);
  const toSvg = (ev) => {
    const r = svg.getBoundingClientRect();
    return { x: view.x + ((ev.clientX - r.left) / r.width) * view.w, y: view.y + ((ev.clientY - r.top) / r.height) * view.h };
  };
  svg.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const p = toSvg(ev);
    zoom(ev.deltaY > 0 ? 1.15 : 0.87, p.x, p.y);
  }, { passive: false });
  let drag = null;
  svg.addEventListener('pointerdown', (ev) => {
    if (ev.target.closest('g.n')) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const r = svg.getBoundingClientRect();
    view.x = drag.vx - ((ev.clientX - drag.x) / r.width) * view.w;
    view.y = drag.vy - ((ev.clientY - drag.y) / r.height) * view.h;
    setView();
  });
  svg.addEventListener('pointerup', () => { drag = null; });

  function centreOn(b) {
    const el = boxEl[b];
    if (!el) return;
    const m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(el.getAttribute('transform'));
    if (!m) return;
    view.x = Number(m[1]) + 88 - view.w / 2;
    view.y = Number(m[2]) + 23 - view.h / 2;
    setView();
    for (const o of svg.querySelectorAll('g.n.found')) o.classList.remove('found');
    el.classList.add('found');
  }

  // --- clicks open the node panel (panel.js); search finds a node -----------------
  svg.addEventListener('click', (ev) => {
    const g = ev.target.closest('g.n');
    if (!g) return;
    const b = Number(g.dataset.b);
    const ids = members[b].map((i) => index.ids[i]);
    if (DF.openBox) DF.openBox(ids);
  });
  const search = document.getElementById('search');
  search.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter') return;
    const q = search.value.trim();
    if (!q) return;
    let i = pos.get(q);
    if (i === undefined) i = index.ids.findIndex((id) => id.includes(q));
    if (i === -1 || i === undefined) { DF.toast('no node matches ' + q, true); return; }
    centreOn(index.boxes[i]);
    if (DF.openBox) DF.openBox([index.ids[i]]);
  });

  // --- actions ---------------------------------------------------------------------------
  for (const b of document.querySelectorAll('.actions button[data-action]')) {
    b.addEventListener('click', async () => {
      const act = b.dataset.action;
      const ask = act === 'cancel' ? 'Cancel this run?' : act === 'fresh'
        ? 'Start a fresh run with the same inputs?' : 'Start a new run that re-runs only what failed?';
      if (!DF.confirmAct(ask)) return;
      b.disabled = true;
      const url = '/api/v1/runs/' + encodeURIComponent(runId) + (act === 'cancel' ? '/cancel' : '/retry');
      const r = await DF.api('POST', url, act === 'cancel' ? undefined : { mode: act });
      b.disabled = false;
      if (!r.ok) { DF.toast(DF.problemText(r.data), true); return; }
      if (act === 'cancel') {
        DF.toast(r.data.requested ? 'cancellation requested' : 'run ' + r.data.state);
        if (terminal(r.data.state)) runState(r.data.state);
      } else {
        window.location.href = '/runs/' + encodeURIComponent(r.data.id);
      }
    });
  }
})();
