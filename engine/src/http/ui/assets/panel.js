// dagforge dashboard: the node panel of the run page. Attempts with durations and
// errors, output JSON (collapsed, cut, with a link to the whole), fan-out items paged,
// artifacts, progress, and the console: a level filter and a live tail that can be
// paused. Everything from the API is put in the page as text.
'use strict';

(function () {
  const DF = window.DF;
  const panel = document.getElementById('panel');
  const el = DF.el;
  const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
  const MAX_LINES = 2000;
  const SHOW_BYTES = 4096;
  const runUrl = '/api/v1/runs/' + encodeURIComponent(DF.runId);
  let current = null; // { node, item, level, paused, held: [], box }

  function close() {
    panel.hidden = true;
    panel.replaceChildren();
    current = null;
  }

  function header(title) {
    const x = el('button', { type: 'button', class: 'close', title: 'Close', text: '×' });
    x.addEventListener('click', close);
    return el('div', { class: 'panel-head' }, el('h2', { text: title }), x);
  }

  // A group of sibling nodes: their ids, filtered and paged, each opening its panel.
  DF.openBox = function (ids) {
    if (ids.length === 1) { openNode(ids[0], null); return; }
    current = null;
    panel.hidden = false;
    const filter = el('input', { type: 'search', placeholder: 'filter ids', size: 18 });
    const list = el('ul', { class: 'ids' });
    const more = el('button', { type: 'button', text: 'more' });
    let shown = 0;
    let matching = ids;
    const page = () => {
      for (const id of matching.slice(shown, shown + 100)) {
        const a = el('a', { href: '#', text: id });
        a.addEventListener('click', (ev) => { ev.preventDefault(); openNode(id, null); });
        list.append(el('li', {}, a));
      }
      shown = Math.min(shown + 100, matching.length);
      more.hidden = shown >= matching.length;
    };
    filter.addEventListener('input', () => {
      const q = filter.value.trim();
      matching = q ? ids.filter((id) => id.includes(q)) : ids;
      list.replaceChildren();
      shown = 0;
      page();
    });
    more.addEventListener('click', page);
    panel.replaceChildren(header(ids.length + ' nodes'), filter, list, more);
    page();
  };

  function json(summary, value, link) {
    const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
    const cut = text.length > SHOW_BYTES;
    const d = el('details', { class: 'json' },
      el('summary', {}, summary + ' ', el('span', { class: 'dim', text: '(' + text.length + ' chars)' })),
      el('pre', { text: cut ? text.slice(0, SHOW_BYTES) + '\n… cut' : text }));
    if (cut || link) d.append(el('a', { href: link, target: '_blank', rel: 'noopener', text: 'whole (JSON)' }));
    return d;
  }

  async function openNode(node, item) {
    const nodeUrl = runUrl + '/nodes/' + encodeURIComponent(node);
    const r = await DF.api('GET', nodeUrl);
    panel.hidden = false;
    if (!r.ok) { panel.replaceChildren(header(node), el('p', { class: 'problem', text: DF.problemText(r.data) })); return; }
    const n = r.data;
    const facts = el('dl', { class: 'facts' },
      el('dt', { text: 'Job' }), el('dd', {}, el('code', { text: n.job })),
      el('dt', { text: 'State' }), el('dd', {}, DF.badge(n.state)),
      el('dt', { text: 'Attempts' }), el('dd', { text: n.attempts }),
      el('dt', { text: 'Duration' }), el('dd', { text: n.duration_ms != null ? DF.fmtMs(n.duration_ms) : '—' }));
    const parts = [header(node), facts];
    if (n.error) parts.push(el('p', { class: 'problem' }, el('strong', { text: n.error.kind + ': ' }), n.error.message));
    if (n.reason) parts.push(el('p', { class: 'dim', text: n.reason }));
    const progress = el('div', { class: 'progress', hidden: true }, el('div', { class: 'bar' }), el('span', { class: 'msg' }));
    parts.push(progress);
    if (n.output !== undefined) parts.push(json('Output', n.output, nodeUrl));
    else if (n.output_preview !== undefined) parts.push(json('Output (preview of ' + n.output_bytes + ' bytes)', n.output_preview, nodeUrl));
    const attempts = (n.attempt_list || []).filter((a) => a.item === null || a.item === undefined);
    if (attempts.length) {
      const t = el('table', { class: 'grid small' }, el('thead', {}, el('tr', {},
        el('th', { text: '#' }), el('th', { text: 'State' }), el('th', { text: 'Duration' }), el('th', { text: 'Error' }))));
      const tb = el('tbody');
      for (const a of attempts) {
        tb.append(el('tr', {}, el('td', { text: a.attempt }), el('td', {}, DF.badge(a.state)),
          el('td', { text: a.duration_ms != null ? DF.fmtMs(a.duration_ms) : '—' }),
          el('td', { text: a.error ? a.error.kind + ': ' + a.error.message : '' })));
      }
      t.append(tb);
      parts.push(el('h3', { text: 'Attempts' }), t);
    }
    if (n.fan_out) parts.push(el('h3', { text: 'Items' }), itemsList(nodeUrl, node));
    const arts = el('ul', { class: 'artifacts' });
    parts.push(el('h3', { text: 'Artifacts' }), arts);
    const con = consoleBox(node, item);
    parts.push(con);
    panel.replaceChildren(...parts);
    current = { node, item, level: 'trace', paused: false, held: [], progress, pre: con.querySelector('pre') };
    loadLogs();
    DF.api('GET', runUrl + '/artifacts').then((a) => {
      if (!a.ok) { arts.append(el('li', { class: 'dim', text: DF.problemText(a.data) })); return; }
      const mine = a.data.filter((x) => x.key.includes('/' + node + '/'));
      if (!mine.length) arts.append(el('li', { class: 'dim', text: 'none' }));
      for (const x of mine) arts.append(el('li', {}, el('code', { text: x.key }), ' ', el('span', { class: 'dim', text: x.size + ' bytes' })));
    });
  }

  function itemsList(nodeUrl, node) {
    const box = el('div', { class: 'items' });
    const t = el('table', { class: 'grid small' }, el('thead', {}, el('tr', {},
      el('th', { text: 'Item' }), el('th', { text: 'State' }), el('th', { text: 'Attempts' }), el('th', { text: 'Duration' }))));
    const tb = el('tbody');
    t.append(tb);
    const more = el('button', { type: 'button', text: 'more items', hidden: true });
    let cursor = null;
    const load = async () => {
      const r = await DF.api('GET', nodeUrl + '/items?limit=50' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      if (!r.ok) { box.append(el('p', { class: 'problem', text: DF.problemText(r.data) })); return; }
      for (const it of r.data.items) {
        const a = el('a', { href: '#', text: '#' + it.item });
        a.addEventListener('click', (ev) => { ev.preventDefault(); focusItem(node, it.item); });
        tb.append(el('tr', { 'data-item': it.item }, el('td', {}, a), el('td', {}, DF.badge(it.state)),
          el('td', { text: it.attempts }), el('td', { text: it.duration_ms != null ? DF.fmtMs(it.duration_ms) : '—' })));
      }
      cursor = r.data.next_cursor || null;
      more.hidden = !cursor;
    };
    more.addEventListener('click', load);
    box.append(t, more);
    load();
    return box;
  }

  function focusItem(node, item) {
    if (!current || current.node !== node) return;
    current.item = item;
    const label = panel.querySelector('.console .which');
    if (label) label.textContent = 'item #' + item;
    loadLogs();
  }

  function consoleBox() {
    const level = el('select', { 'aria-label': 'level' }, ...LEVELS.map((l) => el('option', { value: l, text: l })));
    const pause = el('input', { type: 'checkbox' });
    const all = el('button', { type: 'button', text: 'all items' });
    const pre = el('pre', { class: 'log' });
    level.addEventListener('change', () => { current.level = level.value; loadLogs(); });
    pause.addEventListener('change', () => {
      current.paused = pause.checked;
      if (!current.paused) { for (const l of current.held.splice(0)) line(l); }
    });
    all.addEventListener('click', () => { current.item = null; panel.querySelector('.console .which').textContent = ''; loadLogs(); });
    return el('div', { class: 'console' },
      el('h3', {}, 'Console ', el('span', { class: 'which dim' })),
      el('div', { class: 'toolbar' }, el('label', {}, 'level ', level), ' ',
        el('label', {}, pause, ' pause tail'), ' ', all),
      pre);
  }

  function line(l) {
    const pre = current.pre;
    const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const row = el('div', { class: 'line lv-' + l.level },
      el('span', { class: 'at', text: String(l.at).slice(11, 23) }), ' ',
      el('span', { class: 'lv', text: l.level }), ' ',
      l.item != null ? el('span', { class: 'dim', text: '#' + l.item + ' ' }) : null,
      el('span', { class: 'msg', text: l.message }));
    pre.append(row);
    while (pre.childElementCount > MAX_LINES) pre.firstElementChild.remove();
    if (follow) pre.scrollTop = pre.scrollHeight;
  }

  async function loadLogs() {
    const c = current;
    let url = runUrl + '/logs?tail=500&node=' + encodeURIComponent(c.node) + '&level=' + c.level;
    if (c.item !== null && c.item !== undefined) url += '&item=' + c.item;
    const r = await DF.api('GET', url);
    if (c !== current) return;
    c.pre.replaceChildren();
    if (!r.ok) { c.pre.append(el('div', { class: 'problem', text: DF.problemText(r.data) })); return; }
    c.last = 0;
    for (const l of r.data.items) { line(l); c.last = Math.max(c.last, l.seq); }
  }

  DF.onRunEvent((type, d) => {
    const c = current;
    if (!c || !d || !d.event || d.event.node !== c.node) return;
    const e = d.event;
    if (type === 'log') {
      if (d.seq <= (c.last || 0)) return;
      if (c.item !== null && c.item !== undefined && e.item !== c.item) return;
      if (LEVELS.indexOf(e.level) < LEVELS.indexOf(c.level)) return;
      const l = { at: d.at, level: e.level, item: e.item, message: e.message, seq: d.seq };
      c.last = d.seq;
      if (c.paused) c.held.push(l); else line(l);
    } else if (type === 'progress') {
      c.progress.hidden = false;
      c.progress.querySelector('.bar').style.width = Math.min(100, e.percent) + '%';
      c.progress.querySelector('.msg').textContent = e.percent + '% ' + (e.message || '');
    }
  });

  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape' && !panel.hidden) close(); });
})();
