// dagforge dashboard: the run page's timeline, kept live. The server drew a row per
// attempt (a fan-out node's items on one row) with its key and times; this script
// takes the run's node events (from run.js's stream), adds rows, ends bars, stretches
// the running ones each second, and lays the bars out again once per animation frame.
'use strict';

(function () {
  const DF = window.DF;
  const svg = document.getElementById('gantt');
  if (!svg || !DF.onRunEvent) return;
  const NS = 'http://www.w3.org/2000/svg';
  const ROW_H = 18, LABEL_W = 200, WIDTH = 1000;
  const max = Number(svg.dataset.max) || 300;
  // The server's clock, as this browser's clock reads it.
  const skew = (Number(svg.dataset.now) || Date.now()) - Date.now();
  const now = () => Date.now() + skew;
  const terminal = (s) => s === 'succeeded' || s === 'failed' || s === 'timed_out' ||
    s === 'skipped' || s === 'cancelled';

  const rows = [];
  const byKey = new Map();
  for (const g of svg.querySelectorAll('g.row')) {
    const r = {
      g, key: g.dataset.key, from: Number(g.dataset.from), to: Number(g.dataset.to),
      live: g.dataset.live === '1', label: g.querySelector('text').textContent,
      state: ([...g.querySelector('rect').classList].find((c) => c.startsWith('st-')) || 'st-pending').slice(3),
    };
    rows.push(r);
    byKey.set(r.key, r);
  }
  let leftOut = 0;
  const leftNote = document.getElementById('timeline-left');
  if (leftNote && !leftNote.hidden) leftOut = Number(leftNote.querySelector('span').textContent) || 0;

  function make(key, label, at) {
    if (rows.length >= max) {
      leftOut++;
      return null;
    }
    const g = document.createElementNS(NS, 'g');
    g.setAttribute('class', 'row');
    g.dataset.key = key;
    const text = document.createElementNS(NS, 'text');
    text.setAttribute('x', '4');
    text.textContent = label;
    const rect = document.createElementNS(NS, 'rect');
    rect.setAttribute('height', String(ROW_H - 5));
    rect.append(document.createElementNS(NS, 'title'));
    g.append(text, rect);
    svg.append(g);
    const r = { g, key, from: at, to: at, live: true, label, state: 'running' };
    rows.push(r);
    byKey.set(key, r);
    return r;
  }

  // One node event: an attempt's row, or the items' row of a fan-out node (which
  // runs until the node's own row ends).
  function take(d) {
    const e = d.event || {};
    if (e.type !== 'node') return false;
    const at = Date.parse(d.at) || now();
    const item = e.item !== undefined && e.item !== null;
    if (!item) {
      const its = byKey.get('i:' + e.node);
      if (its && terminal(e.to)) {
        its.live = false;
        its.to = Math.max(its.to, at);
      }
      if (!(e.attempt > 0)) return Boolean(its);
    }
    const key = item ? 'i:' + e.node : 'a:' + e.node + ':' + e.attempt;
    let r = byKey.get(key);
    if (!r) {
      // A row starts when something starts running.
      if (e.to !== 'running' && e.from !== 'running') return false;
      r = make(key, item ? e.node + ' (items)' : e.node + ' #' + e.attempt, at);
      if (!r) return true;
    }
    r.from = Math.min(r.from, at);
    r.to = Math.max(r.to, at);
    r.state = e.to;
    if (item) r.live = true;
    else r.live = !terminal(e.to);
    return true;
  }

  function layout() {
    const t = now();
    for (const r of rows) if (r.live) r.to = Math.max(r.to, t);
    if (!rows.length) return;
    const t0 = Math.min(...rows.map((r) => r.from));
    const t1 = Math.max(...rows.map((r) => r.to));
    const span = Math.max(t1 - t0, 1);
    const x = (v) => LABEL_W + ((v - t0) / span) * (WIDTH - LABEL_W - 10);
    rows.forEach((r, k) => {
      const y = k * ROW_H + 4;
      const [text, rect] = [r.g.querySelector('text'), r.g.querySelector('rect')];
      text.setAttribute('y', String(y + 12));
      rect.setAttribute('class', 'bar st-' + r.state);
      rect.setAttribute('x', String(x(r.from)));
      rect.setAttribute('y', String(y + 2));
      rect.setAttribute('width', String(Math.max(x(r.to) - x(r.from), 2)));
      rect.querySelector('title').textContent = r.label + ': ' + r.state + ', ' + DF.fmtMs(r.to - r.from);
      if (r.live) r.g.dataset.live = '1'; else delete r.g.dataset.live;
      r.g.dataset.from = String(r.from);
      r.g.dataset.to = String(r.to);
    });
    svg.setAttribute('viewBox', '0 0 ' + WIDTH + ' ' + (rows.length * ROW_H + 24));
    document.getElementById('timeline-bars').textContent = rows.length;
    document.getElementById('timeline-span').textContent = DF.fmtMs(span);
    document.getElementById('timeline-empty').hidden = true;
    if (leftOut > 0 && leftNote) {
      leftNote.querySelector('span').textContent = leftOut;
      leftNote.hidden = false;
    }
  }

  let due = false;
  const soon = () => {
    if (due) return;
    due = true;
    requestAnimationFrame(() => { due = false; layout(); });
  };
  let runDone = terminal(document.getElementById('run').dataset.state);
  DF.onRunEvent((type, d) => {
    if (type === 'run' && d.event && terminal(d.event.to)) {
      runDone = true;
      // A cancelled run's attempts end with it.
      const at = Date.parse(d.at) || now();
      for (const r of rows) if (r.live) { r.live = false; r.to = Math.max(r.to, at); }
      soon();
    }
    if (type === 'node' && take(d)) soon();
  });
  // Running bars grow with the clock.
  const tick = setInterval(() => {
    if (runDone && !rows.some((r) => r.live)) { clearInterval(tick); return; }
    if (rows.some((r) => r.live)) soon();
  }, 1000);
})();
