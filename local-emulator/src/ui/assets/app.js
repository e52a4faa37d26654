// Durafn's visibility UI: a small single-page app over the REST API.
//
// Rules this file keeps:
// - every piece of data reaches the page through textContent or an attribute
//   set with setAttribute (never through HTML parsing), so an input holding
//   "<script>" shows as text;
// - the API token (durafn server) never stays in the page: the sign-in form
//   posts it once to /ui/login, which answers with an HttpOnly, SameSite=Strict
//   session cookie the browser sends with every request; it is never in a URL;
// - the page polls the API while visible and stops while the tab is hidden.
'use strict';

(() => {
  // ---------------------------------------------------------------- helpers

  // Only a flag (the cookie itself is out of the script's reach).
  const SIGNED_IN_KEY = 'durafn.signedIn';
  const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);
  const STATUSES = ['RUNNING', 'SUSPENDED', 'PENDING', 'BLOCKED', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
  const STATUS_HELP = {
    PENDING: 'created, not run yet',
    RUNNING: 'a handler invocation is running it',
    SUSPENDED: 'waiting for a timer, a retry, a callback or an event',
    SUCCEEDED: 'finished with an output',
    FAILED: 'finished with an error',
    CANCELLED: 'cancelled by a user',
    TIMED_OUT: 'ran past its timeout',
    BLOCKED: 'stopped by non-determinism or a bug; can be resumed',
  };
  const COLLAPSE_BYTES = 2048;
  const LIST_POLL_MS = 2000;
  const EXEC_POLL_MS = 1000;
  const IDLE_POLL_MS = 5000;

  const $ = (id) => document.getElementById(id);

  /** Creates an element. `props`: class, text, and attributes; children: nodes or strings. */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, '');
      else node.setAttribute(key, String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  const execHref = (id) => '/ui/executions/' + encodeURIComponent(id);
  const label = (status) => (status || '').toLowerCase().replace('_', ' ');
  const ms = (iso) => (iso ? Date.parse(iso) : NaN);

  function badge(status, extra) {
    return h('span', { class: 'badge st-' + (status || 'UNKNOWN'), title: STATUS_HELP[status] || '' },
      label(status) || '?', extra || null);
  }

  function two(n) { return String(n).padStart(2, '0'); }

  /** 09:00:10 today, "Nov 25 09:00:10" otherwise. */
  function fmtTime(iso) {
    const t = ms(iso);
    if (Number.isNaN(t)) return '—';
    const d = new Date(t);
    const hms = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return hms;
    const month = d.toLocaleString('en', { month: 'short' });
    const year = d.getFullYear() === now.getFullYear() ? '' : ` ${d.getFullYear()}`;
    return `${month} ${d.getDate()}${year} ${hms}`;
  }

  function fmtDuration(msec) {
    if (!Number.isFinite(msec)) return '—';
    const a = Math.max(0, msec);
    if (a < 1000) return `${Math.round(a)} ms`;
    if (a < 10000) return `${(a / 1000).toFixed(1)} s`;
    if (a < 60000) return `${Math.round(a / 1000)} s`;
    const s = Math.round(a / 1000);
    if (s < 3600) return `${Math.floor(s / 60)} min ${two(s % 60)} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${two(Math.floor((s % 3600) / 60))} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  /** "in 7 s" / "due now" for a future time. */
  function fmtUntil(t) {
    const d = t - Date.now();
    if (d <= 500) return 'due now';
    return 'in ' + fmtDuration(Math.ceil(d / 1000) * 1000);
  }

  /** "12 s ago" for a past time. */
  function fmtAgo(t) {
    const d = Date.now() - t;
    if (d < 1500) return 'just now';
    return fmtDuration(Math.floor(d / 1000) * 1000) + ' ago';
  }

  /** A text span that keeps counting down to (or up from) a time, see tickClocks. */
  function clock(iso, mode) {
    const t = ms(iso);
    const node = h('span', { class: 'clock', 'data-clock': mode, 'data-t': String(t), title: iso || '' });
    node.textContent = clockText(mode, t);
    return node;
  }

  function clockText(mode, t) {
    if (mode === 'until') return fmtUntil(t);
    if (mode === 'for') {
      const d = Date.now() - t;
      return d < 1000 ? '<1 s' : fmtDuration(Math.floor(d / 1000) * 1000);
    }
    return fmtAgo(t);
  }

  /** Axis labels: "+2 s", "+1 min", "+500 ms". */
  function fmtTick(msec) {
    if (msec < 1000) return `+${Math.round(msec)} ms`;
    if (msec < 60000) return `+${Number((msec / 1000).toFixed(1))} s`;
    if (msec < 3600000) return `+${Number((msec / 60000).toFixed(1))} min`;
    if (msec < 86400000) return `+${Number((msec / 3600000).toFixed(1))} h`;
    return `+${Number((msec / 86400000).toFixed(1))} d`;
  }

  function tickClocks() {
    for (const node of document.querySelectorAll('[data-clock]')) {
      const t = Number(node.getAttribute('data-t'));
      if (!Number.isFinite(t)) continue;
      const text = clockText(node.getAttribute('data-clock'), t);
      if (node.textContent !== text) node.textContent = text;
    }
  }

  function sizeOf(text) {
    const bytes = new Blob([text]).size;
    return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
  }

  /** One line of JSON, cut at `max` characters. */
  function preview(value, max = 90) {
    if (value === undefined) return '';
    let text;
    try { text = JSON.stringify(value); } catch { text = String(value); }
    if (text === undefined) text = String(value);
    return text.length > max ? text.slice(0, max - 1) + '…' : text;
  }

  const TOKEN_RE = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

  /** Syntax-coloured JSON text as DOM nodes (text nodes only, no HTML). */
  function colourise(text, into) {
    let last = 0;
    TOKEN_RE.lastIndex = 0;
    for (let m = TOKEN_RE.exec(text); m; m = TOKEN_RE.exec(text)) {
      if (m.index > last) into.append(document.createTextNode(text.slice(last, m.index)));
      let cls = 'j-num';
      if (m[1] !== undefined) cls = m[2] ? 'j-key' : 'j-str';
      else if (m[3] !== undefined) cls = m[3] === 'null' ? 'j-null' : 'j-bool';
      into.append(h('span', { class: cls, text: m[1] !== undefined ? m[1] : m[0] }));
      if (m[2]) into.append(document.createTextNode(m[2]));
      last = TOKEN_RE.lastIndex;
    }
    if (last < text.length) into.append(document.createTextNode(text.slice(last)));
  }

  /** A pretty-printed JSON panel; payloads over 2 KB start collapsed. */
  function jsonView(value, opts = {}) {
    const wrap = h('div', { class: 'json' + (opts.error ? ' json-error' : '') });
    if (value === undefined || value === null) {
      wrap.append(h('div', { class: 'muted json-empty', text: opts.empty || 'null' }));
      return wrap;
    }
    let text;
    try { text = JSON.stringify(value, null, 2); } catch { text = String(value); }
    const pre = h('pre', { class: 'json-pre' });
    const bytes = new Blob([text]).size;
    const tools = h('div', { class: 'json-tools' }, h('span', { class: 'muted', text: sizeOf(text) }));
    const copy = h('button', {
      type: 'button', class: 'btn btn-tiny btn-ghost', text: 'Copy',
      onclick: async (e) => {
        e.stopPropagation();
        try { await navigator.clipboard.writeText(text); toast('Copied to the clipboard', 'ok'); } catch { toast('Copying is not allowed here', 'error'); }
      },
    });
    tools.append(copy);
    const render = (all) => {
      clear(pre);
      if (all || bytes <= COLLAPSE_BYTES) {
        if (text.length > 300000) pre.textContent = text; else colourise(text, pre);
        return;
      }
      let cut = text.lastIndexOf('\n', COLLAPSE_BYTES);
      if (cut < COLLAPSE_BYTES / 2) cut = COLLAPSE_BYTES;
      colourise(text.slice(0, cut), pre);
      pre.append(h('span', { class: 'muted', text: '\n…' }));
    };
    render(false);
    wrap.append(tools, pre);
    if (bytes > COLLAPSE_BYTES) {
      let all = false;
      const more = h('button', { type: 'button', class: 'btn btn-small json-more' });
      const sync = () => { more.textContent = all ? 'Collapse' : `Show all (${sizeOf(text)})`; };
      more.addEventListener('click', (e) => { e.stopPropagation(); all = !all; render(all); sync(); });
      sync();
      wrap.append(more);
    }
    return wrap;
  }

  function errorText(err) {
    if (!err) return '';
    if (typeof err === 'string') return err;
    const type = err.type || err.code || 'Error';
    return err.message ? `${type}: ${err.message}` : type;
  }

  // ------------------------------------------------------------- API + auth

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const signedIn = () => sessionStorage.getItem(SIGNED_IN_KEY) === '1';

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'Offline', 'Cannot reach the durafn server (' + e.message + '). Is it still running?');
    }
    const text = await res.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch { data = null; } }
    if (!res.ok) {
      const err = (data && data.error) || {};
      let message = err.message;
      if (!message && (res.status === 404 || res.status === 405)) {
        message = `This server does not offer ${method} ${path.split('?')[0]} (HTTP ${res.status}): update durafn.`;
      }
      throw new ApiError(res.status, err.code || 'HTTP' + res.status, message || `HTTP ${res.status} ${res.statusText}`);
    }
    return data;
  }

  const enc = encodeURIComponent;

  // ------------------------------------------------------------- live status

  function setLive(state, detail) {
    const node = $('live');
    node.className = 'live live-' + state;
    node.textContent = { live: 'live', paused: 'paused (tab hidden)', offline: 'offline — retrying', auth: 'token needed' }[state] || state;
    node.title = detail || (state === 'live' ? 'Updates by itself every few seconds' : '');
  }

  function toast(message, kind) {
    const node = h('div', { class: 'toast toast-' + (kind || 'info'), role: 'status', text: message });
    $('toasts').append(node);
    setTimeout(() => node.remove(), kind === 'error' ? 9000 : 4000);
  }

  // ------------------------------------------------------------------ dialog

  /**
   * A confirmation dialog. `fields`: [{name, label, kind: 'text'|'json', value, readonly, hint}].
   * `run(values)` performs the action; its error stays in the dialog.
   */
  function confirmAction({ title, text, fields = [], ok, danger, run }) {
    const dialog = $('dialog');
    $('dialog-title').textContent = title;
    $('dialog-text').textContent = text || '';
    const box = clear($('dialog-fields'));
    const inputs = {};
    for (const f of fields) {
      const id = 'dlg-' + f.name;
      const input = f.kind === 'json'
        ? h('textarea', { id, rows: 6, spellcheck: 'false', class: 'mono' })
        : h('input', { id, type: 'text', autocomplete: 'off', readonly: !!f.readonly, class: f.mono ? 'mono' : '' });
      input.value = f.value || '';
      inputs[f.name] = { input, field: f };
      box.append(h('label', { class: 'field', for: id }, h('span', { text: f.label }), input,
        f.hint ? h('small', { class: 'muted', text: f.hint }) : null));
    }
    const errorNode = $('dialog-error');
    errorNode.hidden = true;
    const okButton = $('dialog-ok');
    okButton.textContent = ok || 'OK';
    okButton.className = 'btn ' + (danger ? 'btn-danger' : 'btn-primary');
    okButton.disabled = false;
    const form = $('dialog-form');
    const onSubmit = async (e) => {
      e.preventDefault();
      const values = {};
      for (const [name, { input, field }] of Object.entries(inputs)) {
        if (field.kind === 'json') {
          const raw = input.value.trim();
          try { values[name] = raw === '' ? null : JSON.parse(raw); } catch (err) {
            errorNode.textContent = `${field.label} is not valid JSON: ${err.message}`;
            errorNode.hidden = false;
            input.focus();
            return;
          }
        } else {
          values[name] = input.value.trim();
          if (field.required && !values[name]) {
            errorNode.textContent = `${field.label} is required.`;
            errorNode.hidden = false;
            input.focus();
            return;
          }
        }
      }
      okButton.disabled = true;
      try {
        const message = await run(values);
        close();
        toast(message || 'Done', 'ok');
        poller.now();
      } catch (err) {
        errorNode.textContent = err.message || String(err);
        errorNode.hidden = false;
        okButton.disabled = false;
      }
    };
    const close = () => {
      form.removeEventListener('submit', onSubmit);
      $('dialog-cancel').removeEventListener('click', close);
      if (dialog.open) dialog.close();
    };
    form.addEventListener('submit', onSubmit);
    $('dialog-cancel').addEventListener('click', close);
    dialog.addEventListener('close', close, { once: true });
    dialog.showModal();
    const first = Object.values(inputs).find((i) => !i.field.readonly);
    (first ? first.input : $('dialog-cancel')).focus();
  }

  // ------------------------------------------------------------------ poller

  const poller = {
    view: null,
    timer: null,
    busy: false,
    again: false,
    start(view) {
      this.view = view;
      this.now();
    },
    /** Refreshes at once (or right after the refresh in flight). */
    now() {
      clearTimeout(this.timer);
      this.timer = null;
      if (!document.hidden) this.tick();
    },
    async tick() {
      if (this.busy) { this.again = true; return; }
      const view = this.view;
      if (!view) return;
      this.busy = true;
      this.again = false;
      try {
        await view.refresh();
        if (view === this.view) setLive('live');
      } catch (err) {
        if (view === this.view) handleError(err);
      } finally {
        this.busy = false;
      }
      clearTimeout(this.timer);
      this.timer = null;
      if (document.hidden || authNeeded) return;
      if (this.again || view !== this.view) { this.tick(); return; }
      this.timer = setTimeout(() => this.tick(), view.interval());
    },
  };

  let authNeeded = false;

  function handleError(err) {
    if (err instanceof ApiError && err.status === 401) {
      authNeeded = true;
      setLive('auth');
      if (signedIn()) sessionStorage.removeItem(SIGNED_IN_KEY);
      syncSignout();
      showTokenForm('');
      return;
    }
    if (!(err instanceof ApiError) || err.status === 0) {
      setLive('offline', err.message);
      if (err instanceof ApiError) return;
    }
    if (poller.view && poller.view.showError) poller.view.showError(err);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(poller.timer);
      setLive('paused');
    } else {
      poller.now();
    }
  });

  setInterval(tickClocks, 500);

  // ------------------------------------------------------------- token form

  function showTokenForm(problem) {
    const main = clear($('main'));
    const input = h('input', { id: 'token-input', type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: 'paste the token', required: true });
    const form = h('form', {
      class: 'token-form',
      onsubmit: (e) => {
        e.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        input.value = '';
        api('POST', '/ui/login', { token: value }).then(() => {
          sessionStorage.setItem(SIGNED_IN_KEY, '1');
          authNeeded = false;
          syncSignout();
          route();
        }, (err) => {
          showTokenForm(err.status === 401 ? 'The server rejected this token: ' + err.message : err.message);
        });
      },
    },
    h('label', { for: 'token-input', text: 'API token' }),
    h('div', { class: 'token-row' }, input, h('button', { type: 'submit', class: 'btn btn-primary', text: 'Sign in' })));
    main.append(h('section', { class: 'card auth-card', id: 'auth' },
      h('h1', { text: 'This server needs an API token' }),
      h('p', {}, 'durafn server protects its API with a token: paste the one from the server\'s ',
        h('code', { text: '--token-file' }), '. The server answers with a session cookie this page cannot read (HttpOnly, this site only); the token itself is not kept.'),
      problem ? h('p', { class: 'alert alert-error', role: 'alert', text: problem }) : null,
      form));
    input.focus();
  }

  function syncSignout() {
    $('signout').hidden = !signedIn();
  }

  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(SIGNED_IN_KEY);
    syncSignout();
    api('POST', '/ui/logout').catch(() => {}).finally(route);
  });

  // ---------------------------------------------------------- the list page

  const RANGES = [
    ['', 'Any time'],
    ['15m', 'Last 15 minutes'],
    ['1h', 'Last hour'],
    ['24h', 'Last 24 hours'],
    ['7d', 'Last 7 days'],
    ['custom', 'Custom range…'],
  ];
  const RANGE_MS = { '15m': 9e5, '1h': 3.6e6, '24h': 8.64e7, '7d': 6.048e8 };

  function toLocalInput(t) {
    const d = new Date(t);
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
  }

  class ListView {
    constructor(params) {
      this.f = {
        function: params.get('function') || '',
        status: (params.get('status') || '').toUpperCase(),
        range: params.get('range') || '',
        since: params.get('since') || '',
        until: params.get('until') || '',
        q: params.get('q') || '',
        where: params.get('where') || '',
        limit: Number(params.get('limit')) || 50,
      };
      this.cursors = [];
      this.details = new Map();
      this.countsAt = 0;
      this.lastSig = '';
      this.functions = [];
      this.build();
    }

    interval() { return LIST_POLL_MS; }

    build() {
      document.title = 'Executions · Durafn';
      const main = clear($('main'));
      this.chips = h('div', { class: 'chips', role: 'tablist', 'aria-label': 'Filter by status' });
      this.fnSelect = h('select', { id: 'f-function', 'aria-label': 'Function' }, h('option', { value: '', text: 'All functions' }));
      this.rangeSelect = h('select', { id: 'f-range', 'aria-label': 'Time range' },
        RANGES.map(([v, t]) => h('option', { value: v, text: t })));
      this.sinceInput = h('input', { id: 'f-since', type: 'datetime-local', 'aria-label': 'From' });
      this.untilInput = h('input', { id: 'f-until', type: 'datetime-local', 'aria-label': 'Until' });
      this.custom = h('span', { class: 'custom-range' }, this.sinceInput, h('span', { class: 'muted', text: '→' }), this.untilInput);
      this.search = h('input', { id: 'f-q', type: 'search', placeholder: 'Search execution id or name', 'aria-label': 'Search execution id or name', autocomplete: 'off', spellcheck: 'false' });
      this.where = h('input', { id: 'f-where', type: 'search', class: 'mono', placeholder: 'input.customer_id=42 or attr.customer=42', title: 'Conditions on the input, the output or a search attribute the handler set (ctx.set_attribute, indexed): input.PATH=VALUE, output.PATH=VALUE, attr.NAME=VALUE; several joined by ; (at most one attr.)', 'aria-label': 'Filter by input or output fields or search attributes', autocomplete: 'off', spellcheck: 'false' });
      this.clearBtn = h('button', { type: 'button', class: 'btn btn-small btn-ghost', text: 'Clear filters' });
      this.tbody = h('tbody');
      this.note = h('div', { class: 'table-note' });
      this.pager = h('div', { class: 'pager' });
      this.errorBox = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
      this.fnSelect.value = this.f.function;
      this.rangeSelect.value = this.f.range;
      this.search.value = this.f.q;
      this.where.value = this.f.where;
      this.sinceInput.value = this.f.since ? toLocalInput(Date.parse(this.f.since)) : '';
      this.untilInput.value = this.f.until ? toLocalInput(Date.parse(this.f.until)) : '';
      this.custom.hidden = this.f.range !== 'custom';

      const changed = () => { this.cursors = []; this.countsAt = 0; this.rendered = ''; this.syncUrl(); poller.now(); };
      this.fnSelect.addEventListener('change', () => { this.f.function = this.fnSelect.value; changed(); });
      this.rangeSelect.addEventListener('change', () => {
        this.f.range = this.rangeSelect.value;
        this.custom.hidden = this.f.range !== 'custom';
        if (this.f.range === 'custom' && !this.sinceInput.value) this.sinceInput.value = toLocalInput(Date.now() - 3.6e6);
        this.readCustom();
        changed();
      });
      for (const input of [this.sinceInput, this.untilInput]) {
        input.addEventListener('change', () => { this.readCustom(); changed(); });
      }
      let debounce = null;
      this.search.addEventListener('input', () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => { this.f.q = this.search.value.trim(); changed(); }, 250);
      });
      // Applied on Enter or when the field is left (a half-typed condition is an error).
      this.where.addEventListener('change', () => { this.f.where = this.where.value.trim(); changed(); });
      this.clearBtn.addEventListener('click', () => {
        Object.assign(this.f, { function: '', status: '', range: '', since: '', until: '', q: '', where: '' });
        this.fnSelect.value = ''; this.rangeSelect.value = ''; this.search.value = ''; this.where.value = '';
        this.sinceInput.value = ''; this.untilInput.value = ''; this.custom.hidden = true;
        this.renderChips(this.counts);
        changed();
      });

      const table = h('table', { class: 'exec-table', id: 'executions' },
        h('thead', {}, h('tr', {},
          h('th', { class: 'c-status', text: 'Status' }),
          h('th', { class: 'c-id', text: 'Execution' }),
          h('th', { class: 'c-fn', text: 'Function' }),
          h('th', { class: 'c-now', text: 'Now at / result' }),
          h('th', { class: 'c-time', text: 'Started' }),
          h('th', { class: 'c-dur', text: 'Duration' }))),
        this.tbody);

      main.append(
        h('div', { class: 'page-head' },
          h('h1', { text: 'Executions' }),
          h('span', { class: 'muted', text: 'newest first · updates by itself' })),
        this.chips,
        h('div', { class: 'filters' }, this.fnSelect, this.rangeSelect, this.custom, this.search, this.where, this.clearBtn),
        this.errorBox,
        h('div', { class: 'table-wrap card' }, table, this.note),
        this.pager);
      this.renderChips(null);
    }

    readCustom() {
      const read = (input) => (input.value ? new Date(input.value).toISOString() : '');
      if (this.f.range === 'custom') {
        this.f.since = read(this.sinceInput);
        this.f.until = read(this.untilInput);
      } else {
        this.f.since = '';
        this.f.until = '';
      }
    }

    syncUrl() {
      const p = new URLSearchParams();
      for (const k of ['function', 'status', 'range', 'since', 'until', 'q', 'where']) if (this.f[k]) p.set(k, this.f[k]);
      if (this.f.limit !== 50) p.set('limit', String(this.f.limit));
      const qs = p.toString();
      history.replaceState(null, '', '/ui/' + (qs ? '?' + qs : ''));
    }

    /** since/until for the API: presets are relative to now. */
    timeWindow() {
      if (RANGE_MS[this.f.range]) return { since: new Date(Date.now() - RANGE_MS[this.f.range]).toISOString(), until: '' };
      if (this.f.range === 'custom') return { since: this.f.since, until: this.f.until };
      return { since: '', until: '' };
    }

    query(withStatus) {
      const w = this.timeWindow();
      const p = new URLSearchParams();
      if (this.f.function) p.set('function', this.f.function);
      if (withStatus && this.f.status) p.set('status', this.f.status);
      if (w.since) p.set('since', w.since);
      if (w.until) p.set('until', w.until);
      if (this.f.q) p.set('q', this.f.q);
      return p;
    }

    async refresh() {
      const p = this.query(true);
      if (this.f.where) p.set('where', this.f.where);
      p.set('limit', String(this.f.limit));
      const cursor = this.cursors[this.cursors.length - 1];
      if (cursor) p.set('cursor', cursor);
      const page = await api('GET', '/v1/executions?' + p.toString());
      this.errorBox.hidden = true;
      const sig = page.executions.map((e) => e.id + e.status + e.updated_at).join('|');
      if (sig !== this.lastSig || Date.now() - this.countsAt > 10000) {
        try {
          const counts = await api('GET', '/ui/api/counts?' + this.query(false).toString());
          this.counts = counts;
          this.countsAt = Date.now();
          this.renderChips(counts);
          this.renderFunctions(counts.functions || []);
        } catch (err) {
          if (err.status === 401) throw err;
        }
      }
      this.lastSig = sig;
      this.page = page;
      await this.loadDetails(page.executions);
      const view = JSON.stringify([page, this.cursors.length, page.executions.map((e) => (this.details.get(e.id) || {}).updated_at)]);
      if (view !== this.rendered) {
        this.rendered = view;
        this.renderRows();
        this.renderPager();
      }
    }

    /** Describes every row whose updated_at changed (for "now at" and results). */
    async loadDetails(executions) {
      const ids = new Set(executions.map((e) => e.id));
      for (const id of this.details.keys()) if (!ids.has(id)) this.details.delete(id);
      const stale = executions.filter((e) => {
        const d = this.details.get(e.id);
        return !d || d.updated_at !== e.updated_at || d.status !== e.status;
      });
      await Promise.all(stale.map(async (e) => {
        try {
          const full = await api('GET', '/v1/executions/' + enc(e.id));
          this.details.set(e.id, full);
        } catch (err) {
          if (err.status === 401) throw err;
        }
      }));
    }

    renderFunctions(functions) {
      const key = functions.join('\n');
      if (key === this.functionsKey) return;
      this.functionsKey = key;
      clear(this.fnSelect).append(h('option', { value: '', text: 'All functions' }));
      const names = new Set(functions);
      if (this.f.function) names.add(this.f.function);
      for (const f of [...names].sort()) this.fnSelect.append(h('option', { value: f, text: f }));
      this.fnSelect.value = this.f.function;
    }

    renderChips(counts) {
      clear(this.chips);
      const c = (counts && counts.counts) || {};
      const more = counts && counts.capped ? '+' : '';
      const chip = (status, text, n) => {
        const active = this.f.status === status;
        return h('button', {
          type: 'button', role: 'tab', 'aria-selected': active ? 'true' : 'false',
          class: 'chip' + (active ? ' chip-active' : '') + (status ? ' chip-' + status : '') + (n === 0 ? ' chip-zero' : ''),
          'data-status': status || 'ALL', title: status ? STATUS_HELP[status] : 'every status',
          onclick: () => {
            this.f.status = active && status ? '' : status;
            this.cursors = [];
            this.syncUrl();
            this.renderChips(this.counts);
            poller.now();
          },
        }, status ? h('span', { class: 'dot st-' + status }) : null, text,
        h('span', { class: 'chip-count', text: counts ? String(n) + more : '·' }));
      };
      this.chips.append(chip('', 'All', counts ? counts.total : 0));
      for (const s of STATUSES) this.chips.append(chip(s, label(s), c[s] || 0));
    }

    renderRows() {
      const rows = this.page.executions;
      clear(this.tbody);
      for (const e of rows) {
        const d = this.details.get(e.id);
        const created = ms(e.created_at);
        const end = e.ended_at ? ms(e.ended_at) : Date.now();
        const tr = h('tr', { 'data-id': e.id, 'data-status': e.status, class: 'row-link' },
          h('td', { class: 'c-status' }, badge(e.status)),
          h('td', { class: 'c-id' }, h('a', { href: execHref(e.id), 'data-nav': true, class: 'mono id-link', text: e.id, title: e.id })),
          h('td', { class: 'c-fn', text: e.function }),
          h('td', { class: 'c-now' }, nowAt(e, d)),
          h('td', { class: 'c-time', title: e.created_at }, fmtTime(e.created_at), h('br'), clock(e.created_at, 'since')),
          h('td', { class: 'c-dur' }, e.ended_at ? fmtDuration(end - created)
            : h('span', { class: 'muted' }, clock(e.created_at, 'for'), ' so far')));
        tr.addEventListener('click', (ev) => {
          if (ev.target.closest('a') || window.getSelection().toString()) return;
          navigate(execHref(e.id));
        });
        this.tbody.append(tr);
      }
      clear(this.note);
      if (rows.length === 0) {
        const filtered = this.f.function || this.f.status || this.f.range || this.f.q || this.f.where;
        this.note.append(filtered
          ? h('p', { class: 'empty', text: 'No executions match these filters.' })
          : h('div', { class: 'empty' },
            h('p', { text: 'No executions yet. Start one and it shows up here by itself:' }),
            h('pre', { class: 'mono', text: 'durafn start order \'{"order_id": "o-1", "amount_cents": 1999}\'' })));
      }
    }

    renderPager() {
      clear(this.pager);
      const n = this.cursors.length;
      const from = n * this.f.limit + 1;
      const count = this.page.executions.length;
      const size = h('select', { 'aria-label': 'Rows per page', class: 'select-small' },
        [25, 50, 100].map((v) => h('option', { value: String(v), text: `${v} per page` })));
      size.value = String(this.f.limit);
      size.addEventListener('change', () => { this.f.limit = Number(size.value); this.cursors = []; this.syncUrl(); poller.now(); });
      this.pager.append(
        h('span', { class: 'muted', text: count ? `Showing ${from}–${from + count - 1}` : '' }),
        size,
        h('button', { type: 'button', class: 'btn btn-small', text: '« Newest', disabled: n === 0, onclick: () => { this.cursors = []; poller.now(); } }),
        h('button', { type: 'button', class: 'btn btn-small', text: '‹ Newer', disabled: n === 0, onclick: () => { this.cursors.pop(); poller.now(); } }),
        h('button', {
          type: 'button', class: 'btn btn-small', text: 'Older ›', disabled: !this.page.next_cursor,
          onclick: () => { this.cursors.push(this.page.next_cursor); poller.now(); },
        }));
    }

    showError(err) {
      this.errorBox.textContent = err.message;
      this.errorBox.hidden = false;
    }
  }

  /** The list's "Now at / result" cell. */
  function nowAt(e, d) {
    if (!d) return h('span', { class: 'muted', text: '…' });
    const op = d.current_operation;
    const w = d.waiting_on;
    switch (e.status) {
      case 'SUCCEEDED':
        return h('span', { class: 'now-line' }, h('span', { class: 'now-kind ok', text: 'returned' }),
          h('code', { class: 'preview', text: preview(d.output, 70), title: preview(d.output, 400) }));
      case 'FAILED':
      case 'TIMED_OUT':
        return h('span', { class: 'now-line' }, h('span', { class: 'now-kind bad', text: label(e.status) }),
          h('span', { class: 'preview err', text: errorText(d.error), title: errorText(d.error) }));
      case 'CANCELLED':
        return h('span', { class: 'now-line muted' }, op ? `cancelled at ${op.type.toLowerCase()} “${op.name}”` : 'cancelled');
      case 'PENDING':
        return h('span', { class: 'muted', text: 'queued, not started yet' });
      case 'BLOCKED':
        return h('span', { class: 'now-line' }, h('span', { class: 'now-kind bad', text: 'blocked' }),
          h('span', { class: 'preview err', text: errorText(d.error) || (op ? `at “${op.name}”` : '') }));
      case 'SUSPENDED':
        if (w) return waitingLine(w, true);
        break;
      default:
        break;
    }
    if (op) {
      return h('span', { class: 'now-line' }, h('span', { class: 'now-kind run', text: op.type.toLowerCase() }),
        h('strong', { text: op.name }), h('span', { class: 'muted', text: label(op.status) }));
    }
    return h('span', { class: 'muted', text: 'starting' });
  }

  const WAIT_KIND = { timer: 'timer', retry: 'retry', callback: 'callback', event: 'event', resume: 'resuming', several: 'waiting', operation: 'waiting' };

  /** "timer “cool-off” in 7 s" and friends. */
  function waitingLine(w, compact) {
    const node = h('span', { class: 'now-line' }, h('span', { class: 'now-kind wait', text: WAIT_KIND[w.kind] || w.kind }));
    if (w.kind === 'several') {
      node.append(h('span', { text: (w.operations || []).map((o) => `${o.kind} “${o.name}”`).join(', ') }));
    } else if (w.name) {
      node.append(h('strong', { text: w.name }));
    }
    if (w.kind === 'retry' && w.attempt) node.append(h('span', { class: 'muted', text: `after attempt ${w.attempt}` }));
    const outside = w.kind === 'callback' || w.kind === 'event';
    if (outside) {
      if (w.since) node.append(h('span', { class: 'muted' }, 'since ', clock(w.since, 'for')));
      if (w.until && !compact) node.append(h('span', { class: 'muted' }, 'times out ', clock(w.until, 'until')));
    } else if (w.until) {
      if (!compact) node.append(h('span', { class: 'muted', text: 'until ' + fmtTime(w.until) }));
      node.append(h('span', { class: 'countdown' }, '(', clock(w.until, 'until'), ')'));
    }
    return node;
  }

  // ----------------------------------------------------- the execution page

  /** Operations that wait on the outside world; their wake_at is a timeout. */
  const OUTSIDE = new Set(['CALLBACK', 'EVENT']);

  const OP_COLOUR = {
    SUCCEEDED: 'ok', FAILED: 'bad', PENDING: 'wait', STARTED: 'run', TIMED_OUT: 'grey', CANCELLED: 'grey',
  };

  function niceStep(span) {
    const target = span / 6;
    const pow = Math.pow(10, Math.floor(Math.log10(Math.max(target, 1))));
    for (const m of [1, 2, 5, 10]) if (m * pow >= target) return m * pow;
    return 10 * pow;
  }

  class ExecutionView {
    constructor(id) {
      this.id = id;
      this.expanded = new Set();
      this.rows = new Map();
      this.sig = '';
      this.hist = {};
      this.logs = [];
      this.logNext = 0;
      this.eventsSig = '';
      this.build();
    }

    interval() {
      return this.exec && FINAL.has(this.exec.status) ? IDLE_POLL_MS : EXEC_POLL_MS;
    }

    build() {
      document.title = this.id + ' · Durafn';
      const main = clear($('main'));
      this.head = h('section', { class: 'card exec-head', id: 'exec-head' }, h('p', { class: 'muted', text: 'Loading…' }));
      this.inputBox = h('div', { class: 'io-body' });
      this.outputTitle = h('h2', { text: 'Output' });
      this.outputBox = h('div', { class: 'io-body' });
      this.axis = h('div', { class: 'tl-axis' });
      this.opsBox = h('div', { class: 'tl-rows' });
      this.invTrack = h('div', { class: 'op-track lane-track' });
      this.invLane = h('div', { class: 'op-row lane', id: 'invocations' },
        h('div', { class: 'op-label' }, h('span', { class: 'chev', 'aria-hidden': 'true' }), h('span', { class: 'op-name', text: 'Invocations' })),
        this.invTrack, h('div', { class: 'op-result muted', id: 'inv-summary' }));
      this.logTrack = h('div', { class: 'op-track lane-track' });
      this.logLane = h('div', { class: 'op-row lane', id: 'log-lane' },
        h('div', { class: 'op-label' }, h('span', { class: 'chev', 'aria-hidden': 'true' }), h('span', { class: 'op-name', text: 'Logs' })),
        this.logTrack, h('div', { class: 'op-result muted', id: 'log-summary' }));
      this.eventsBox = h('ol', { class: 'events', id: 'events-list' });
      this.eventsNote = h('span', { class: 'muted' });
      this.tlSummary = h('span', { class: 'muted' });
      this.errorBox = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
      const legend = h('span', { class: 'legend' },
        [['ok', 'succeeded'], ['run', 'running'], ['wait', 'waiting'], ['bad', 'failed'], ['grey', 'cancelled / timed out']]
          .map(([cls, text]) => h('span', { class: 'legend-item' }, h('span', { class: 'swatch op-' + cls }), text)),
        h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-inv' }), 'invocation start'));
      main.append(
        h('a', { class: 'back', href: '/ui/', 'data-nav': true, text: '← All executions' }),
        this.errorBox,
        this.head,
        h('section', { class: 'card timeline', id: 'timeline' },
          h('div', { class: 'section-head' }, h('h2', { text: 'Timeline' }), this.tlSummary, legend),
          h('div', { class: 'tl-header' }, h('div', { class: 'tl-h-label', text: 'Operation' }), this.axis, h('div', { class: 'tl-h-result', text: 'Result' })),
          this.invLane,
          this.opsBox,
          this.logLane),
        h('section', { class: 'card events-card', id: 'events' },
          h('div', { class: 'section-head' }, h('h2', { text: 'History' }), this.eventsNote),
          this.eventsBox),
        h('div', { class: 'io' },
          h('section', { class: 'card io-card', id: 'input-panel' }, h('h2', { text: 'Input' }), this.inputBox),
          h('section', { class: 'card io-card', id: 'output-panel' }, this.outputTitle, this.outputBox)));
    }

    async refresh() {
      const [exec, hist] = await Promise.all([
        api('GET', '/v1/executions/' + enc(this.id)),
        api('GET', '/v1/executions/' + enc(this.id) + '/history'),
      ]);
      this.errorBox.hidden = true;
      this.exec = exec;
      this.hist = hist || {};
      this.ops = hist.operations || [];
      await this.fetchLogs();
      const sig = JSON.stringify(exec);
      if (sig !== this.sig) {
        this.sig = sig;
        this.renderHead();
        this.renderIo();
      }
      this.renderTimeline();
    }

    /** New log lines since the last poll (the emulator keeps them per execution). */
    async fetchLogs() {
      if (this.logsGone) return;
      try {
        const r = await api('GET', `/v1/executions/${enc(this.id)}/logs?after=${this.logNext}`);
        const lines = (r && r.lines) || [];
        this.logs.push(...lines);
        if (this.logs.length > 1000) this.logs.splice(0, this.logs.length - 1000);
        if (typeof r.next === 'number') this.logNext = r.next;
        this.logsDropped = r.dropped || 0;
      } catch (err) {
        // A server without captured logs (404): the timeline goes without.
        if (err.status === 404 || err.status === 405) this.logsGone = true;
        else throw err;
      }
    }

    showError(err) {
      if (err.status === 404) {
        clear(this.head).append(h('h1', { class: 'mono', text: this.id }),
          h('p', { class: 'alert alert-error', text: err.message }));
        return;
      }
      this.errorBox.textContent = err.message;
      this.errorBox.hidden = false;
    }

    pendingCallbacks() {
      return this.ops.filter((o) => o.type === 'CALLBACK' && !['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(o.status));
    }

    renderHead() {
      const e = this.exec;
      const created = ms(e.created_at);
      const ended = e.ended_at ? ms(e.ended_at) : NaN;
      const meta = h('div', { class: 'meta' },
        h('span', {}, h('span', { class: 'muted', text: 'Function ' }), h('strong', { text: e.function })),
        h('span', {}, h('span', { class: 'muted', text: 'Started ' }), fmtTime(e.created_at), ' (', clock(e.created_at, 'since'), ')'),
        e.ended_at
          ? h('span', {}, h('span', { class: 'muted', text: 'Ended ' }), fmtTime(e.ended_at), ` · took ${fmtDuration(ended - created)}`)
          : h('span', {}, h('span', { class: 'muted', text: 'Running for ' }), clock(e.created_at, 'for')),
        h('span', {}, h('span', { class: 'muted', text: 'Version ' }), e.version || '—'),
        h('span', {}, h('span', { class: 'muted', text: 'Operations ' }), String(e.operations ?? this.ops.length)));
      const parentId = e.parent_id || e.parent_execution_id || (e.parent && (e.parent.id || e.parent.execution_id));
      if (parentId) {
        meta.append(h('span', {}, h('span', { class: 'muted', text: 'Parent ' }),
          h('a', { href: execHref(parentId), 'data-nav': true, class: 'mono', text: parentId })));
      }
      // Forks: a reset or rerun links to its original, the original to them.
      const from = e.reset_from || e.rerun_of;
      if (from) {
        meta.append(h('span', { id: 'fork-of' }, h('span', { class: 'muted', text: e.reset_from ? 'Reset of ' : 'Rerun of ' }),
          h('a', { href: execHref(from), 'data-nav': true, class: 'mono', text: from })));
      }
      if (e.forks && e.forks.length) {
        const links = [];
        e.forks.forEach((f, i) => {
          if (i) links.push(', ');
          links.push(h('a', { href: execHref(f), 'data-nav': true, class: 'mono', text: f }));
        });
        meta.append(h('span', { id: 'forks' }, h('span', { class: 'muted', text: 'Forks ' }), ...links));
      }
      // Cost: what its invocations sent to the store, priced as on AWS (docs/cost.md).
      const c = e.cost;
      if (c && c.store) {
        const st = c.store;
        const usd = (c.estimate_usd && c.estimate_usd.total_usd) || 0;
        const detail = `${st.reads} reads (${st.read_bytes} B, ${st.read_units} RRU), ${st.writes} writes (${st.write_bytes} B, ${st.write_units} WRU); `
          + `${c.invocations} invocations, ${Number(c.lambda_gb_seconds || 0).toFixed(6)} GB-s`
          + (c.invocations_uncounted ? `; ${c.invocations_uncounted} not counted` : '')
          + (c.prices ? ` — ${c.prices.as_of}` : '');
        meta.append(h('span', { id: 'cost', title: detail },
          h('span', { class: 'muted', text: 'Cost ' }),
          h('strong', { text: '$' + usd.toFixed(8) }),
          h('span', { class: 'muted', text: ` · ${st.reads} reads, ${st.writes} writes, ${st.read_bytes + st.write_bytes} B` })));
      }
      clear(this.head).append(
        h('div', { class: 'head-row' },
          h('h1', { class: 'mono exec-id', text: e.id, title: e.id }),
          badge(e.status),
          e.paused ? h('span', { class: 'badge st-BLOCKED', id: 'paused-badge', title: 'paused by an operator: not dispatched until unpaused', text: 'paused' }) : null,
          h('div', { class: 'actions' }, this.actions())),
        meta,
        this.nowBox());
    }

    /** The "Now" callout: what it is doing or waiting for, since when. */
    nowBox() {
      const e = this.exec;
      const op = e.current_operation;
      const box = h('div', { class: 'now now-' + e.status, id: 'now' });
      const title = (t) => h('span', { class: 'now-title', text: t });
      const opStart = (id) => { const o = this.ops.find((x) => x.id === id); return o ? o.started_at : null; };
      if (e.status === 'SUSPENDED' && e.waiting_on) {
        const w = e.waiting_on;
        box.append(title('Waiting for'));
        const line = h('span', { class: 'now-text' });
        if (w.kind === 'several') {
          line.append((w.operations || []).map((o) => `${o.kind} “${o.name}”`).join(', '));
        } else if (w.kind === 'resume') {
          line.append('the dispatcher to resume it');
        } else {
          line.append(w.kind === 'retry' ? 'a retry of step ' : w.kind + ' ', h('strong', { text: `“${w.name}”` }));
          if (w.kind === 'retry' && w.attempt) line.append(` (attempt ${w.attempt} failed)`);
        }
        const outside = w.kind === 'callback' || w.kind === 'event';
        if (w.until && !outside) line.append(' until ', h('strong', { text: fmtTime(w.until), title: w.until }), ' (', clock(w.until, 'until'), ')');
        if (w.since) line.append(h('span', { class: 'muted' }, ' · since ', fmtTime(w.since), ' (', clock(w.since, 'since'), ')'));
        if (w.until && outside) line.append(h('span', { class: 'muted' }, ' · times out ', h('span', { title: w.until, text: fmtTime(w.until) }), ' (', clock(w.until, 'until'), ')'));
        box.append(line);
        if (w.kind === 'callback') {
          const cb = this.ops.find((o) => o.id === w.op_id) || {};
          box.append(h('span', { class: 'now-actions' },
            this.callbackButtons({ name: w.name, ...cb, callback_id: cb.callback_id || w.callback_id })));
        }
        if (w.kind === 'event') {
          box.append(h('span', { class: 'now-actions' },
            h('button', { type: 'button', class: 'btn btn-small btn-primary', text: `Send “${w.name}” event…`, onclick: () => this.sendEvent(w.name) })));
        }
      } else if (e.status === 'SUCCEEDED') {
        box.append(title('Finished'), h('span', { class: 'now-text' }, `succeeded after ${this.ops.length} operations in ${fmtDuration(ms(e.ended_at) - ms(e.created_at))}`));
      } else if (e.status === 'FAILED' || e.status === 'TIMED_OUT' || e.status === 'BLOCKED') {
        box.append(title(e.status === 'BLOCKED' ? 'Blocked at' : label(e.status) + ' at'),
          h('span', { class: 'now-text' }, op ? h('strong', { text: `${op.type.toLowerCase()} “${op.name}”` }) : '—',
            e.error ? h('span', { class: 'err' }, ': ' + errorText(e.error)) : null));
      } else if (e.status === 'CANCELLED') {
        box.append(title('Cancelled'), h('span', { class: 'now-text' }, op ? `while at ${op.type.toLowerCase()} “${op.name}”` : ''));
      } else if (e.status === 'PENDING') {
        box.append(title('Queued'), h('span', { class: 'now-text', text: 'created; the dispatcher has not run it yet' }));
      } else if (op) {
        const since = opStart(op.op_id);
        box.append(title('Now at'), h('span', { class: 'now-text' }, h('strong', { text: `${op.type.toLowerCase()} “${op.name}”` }),
          ` (${label(op.status)})`, since ? h('span', { class: 'muted' }, ' · since ', fmtTime(since), ' (', clock(since, 'since'), ')') : null));
      } else {
        box.append(title('Now at'), h('span', { class: 'now-text', text: 'starting' }));
      }
      return box;
    }

    actions() {
      const e = this.exec;
      const out = [];
      if (!FINAL.has(e.status)) {
        out.push(h('button', { type: 'button', class: 'btn', id: 'act-event', text: 'Send event…', onclick: () => this.sendEvent('') }));
      }
      if (e.status === 'BLOCKED') {
        out.push(h('button', { type: 'button', class: 'btn', id: 'act-resume', text: 'Resume…', onclick: () => this.resume() }));
      }
      if (e.paused) {
        out.push(h('button', { type: 'button', class: 'btn', id: 'act-unpause', text: 'Unpause', onclick: () => this.setPaused(false) }));
      } else if (['PENDING', 'RUNNING', 'SUSPENDED'].includes(e.status)) {
        out.push(h('button', { type: 'button', class: 'btn', id: 'act-pause', text: 'Pause…', onclick: () => this.setPaused(true) }));
      }
      out.push(h('button', { type: 'button', class: 'btn', id: 'act-rerun', text: 'Rerun…', onclick: () => this.rerun() }));
      if (!FINAL.has(e.status)) {
        out.push(h('button', { type: 'button', class: 'btn btn-danger-outline', id: 'act-cancel', text: 'Cancel…', onclick: () => this.cancel() }));
      }
      return out;
    }

    cancel() {
      confirmAction({
        title: 'Cancel this execution?',
        text: `Execution ${this.id} stops where it is: operations that already ran are not undone, the rest never run. This cannot be reversed.`,
        ok: 'Cancel execution',
        danger: true,
        run: async () => { await api('POST', `/v1/executions/${enc(this.id)}/cancel`); return 'Execution cancelled'; },
      });
    }

    /** Pause (asks first) or unpause (at once) this execution. */
    setPaused(paused) {
      const path = `/v1/executions/${enc(this.id)}/${paused ? 'pause' : 'unpause'}`;
      if (!paused) {
        api('POST', path).then(() => { toast('Execution unpaused'); poller.now(); }, (err) => toast(err.message || String(err), 'error'));
        return;
      }
      confirmAction({
        title: 'Pause this execution?',
        text: 'It is not dispatched until you unpause it: a running invocation finishes its current step and suspends. Timers, callbacks and events are still recorded, and it catches up when unpaused.',
        ok: 'Pause',
        run: async () => { await api('POST', path); return 'Execution paused'; },
      });
    }

    resume() {
      confirmAction({
        title: 'Resume this execution?',
        text: this.exec.status === 'BLOCKED'
          ? 'It replays its journal on the current code and continues from where it stopped.'
          : 'It is invoked again now, replays its journal and continues.',
        ok: 'Resume',
        run: async () => { await api('POST', `/v1/executions/${enc(this.id)}/resume`); return 'Resume requested'; },
      });
    }

    /** Reset: a new execution with this one's journal up to, not including, `op`. */
    resetTo(op) {
      confirmAction({
        title: `Reset to ${op.type.toLowerCase()} “${op.name}”?`,
        text: `A new execution ${this.id}:reset-N keeps the operations before ${op.id} and runs “${op.name}” and everything after it again, on the current code. This execution is not changed.`,
        ok: 'Reset',
        run: async () => {
          const fork = await api('POST', `/v1/executions/${enc(this.id)}/reset`, { to_op: op.id });
          setTimeout(() => navigate(execHref(fork.id)), 0);
          return `Reset as ${fork.id}`;
        },
      });
    }

    rerun() {
      confirmAction({
        title: 'Rerun this execution?',
        text: `A new execution ${this.id}:rerun-N runs from the start with the same input and an empty journal. This execution is not changed.`,
        ok: 'Rerun',
        run: async () => {
          const fork = await api('POST', `/v1/executions/${enc(this.id)}/rerun`);
          setTimeout(() => navigate(execHref(fork.id)), 0);
          return `Rerun as ${fork.id}`;
        },
      });
    }

    sendEvent(name) {
      confirmAction({
        title: 'Send an event',
        text: `The event is delivered to ${this.id}; if it is not waiting for it yet, it is kept until it does.`,
        fields: [
          { name: 'name', label: 'Event name', value: name, required: true, mono: true },
          { name: 'payload', label: 'Payload (JSON)', kind: 'json', value: '{}' },
        ],
        ok: 'Send event',
        run: async (v) => {
          await api('POST', `/v1/executions/${enc(this.id)}/events/${enc(v.name)}`, v.payload);
          return `Event “${v.name}” sent`;
        },
      });
    }

    callbackButtons(op) {
      return [
        h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-action': 'callback-succeed', text: 'Complete…', onclick: (ev) => { ev.stopPropagation(); this.completeCallback(op, true); } }),
        h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', 'data-action': 'callback-fail', text: 'Fail…', onclick: (ev) => { ev.stopPropagation(); this.completeCallback(op, false); } }),
      ];
    }

    completeCallback(op, ok) {
      const known = op && op.callback_id;
      const fields = [{
        name: 'callback', label: 'Callback id', value: known || '', readonly: !!known, required: true, mono: true,
        hint: known ? '' : 'This server does not list callback ids in the history yet: paste the id the workflow handed out.',
      }];
      if (ok) fields.push({ name: 'result', label: 'Result (JSON)', kind: 'json', value: '{"approved": true}' });
      else {
        fields.push({ name: 'type', label: 'Error type', value: 'Rejected', required: true, mono: true });
        fields.push({ name: 'message', label: 'Error message', value: 'rejected from the durafn UI' });
      }
      confirmAction({
        title: ok ? `Complete callback “${op.name}”?` : `Fail callback “${op.name}”?`,
        text: ok ? 'The workflow continues with this result.' : 'The workflow sees this error where it awaits the callback.',
        fields,
        ok: ok ? 'Complete callback' : 'Fail callback',
        danger: !ok,
        run: async (v) => {
          const path = `/v1/callbacks/${enc(v.callback)}/${ok ? 'succeed' : 'fail'}`;
          await api('POST', path, ok ? v.result : { error: { type: v.type, message: v.message } });
          return ok ? 'Callback completed' : 'Callback failed';
        },
      });
    }

    renderIo() {
      const e = this.exec;
      clear(this.inputBox).append(jsonView(e.input));
      clear(this.outputBox);
      if (e.error) {
        this.outputTitle.textContent = 'Error';
        this.outputBox.append(jsonView(e.error, { error: true }));
      } else {
        this.outputTitle.textContent = 'Output';
        this.outputBox.append(e.status === 'SUCCEEDED' || e.output !== null
          ? jsonView(e.output)
          : h('div', { class: 'muted json-empty', text: FINAL.has(e.status) ? 'no output' : 'not finished yet' }));
      }
    }

    /** The time window of the Gantt chart. */
    span() {
      const e = this.exec;
      const t0 = ms(e.created_at);
      let t1 = e.ended_at ? ms(e.ended_at) : Date.now();
      for (const o of this.ops) {
        // A timer or retry due soon stretches the chart to its wake time; a
        // far one (or a callback's timeout) runs off the right edge instead.
        const now = Date.now();
        if (!e.ended_at && o.status === 'PENDING' && o.wake_at && !OUTSIDE.has(o.type)
          && ms(o.wake_at) - t0 <= 4 * (now - t0) + 60000) t1 = Math.max(t1, ms(o.wake_at));
        if (o.ended_at) t1 = Math.max(t1, ms(o.ended_at));
        for (const a of o.attempts || []) t1 = Math.max(t1, ms(a.ended_at) || t1);
      }
      for (const i of this.hist.invocations || []) {
        if (i.ended_at) t1 = Math.max(t1, ms(i.ended_at));
      }
      for (const l of this.logs) if (Number.isFinite(l.time)) t1 = Math.max(t1, l.time);
      return { t0, t1: Math.max(t1, t0 + 1000) };
    }

    renderTimeline() {
      const { t0, t1 } = this.span();
      const total = t1 - t0;
      const pct = (t) => `${Math.min(100, Math.max(0, ((t - t0) / total) * 100))}%`;
      const e = this.exec;
      const live = !FINAL.has(e.status) && e.status !== 'BLOCKED';
      this.tlSummary.textContent = `${this.ops.length} operation${this.ops.length === 1 ? '' : 's'} · ${fmtDuration(total)}`;

      // The axis.
      clear(this.axis);
      const step = niceStep(total);
      const nowFrac = (Date.now() - t0) / total;
      for (let t = 0; t <= total + 1; t += step) {
        // Leave room for the "now" marker.
        if (live && t !== 0 && Math.abs(t / total - nowFrac) < 0.09) continue;
        const tick = h('span', { class: 'tick', text: t === 0 ? '0' : fmtTick(t) });
        tick.style.left = pct(t0 + t);
        if ((t / total) > 0.94 && t !== 0) tick.classList.add('tick-end');
        this.axis.append(tick);
      }
      if (live) {
        const now = h('span', { class: 'tick-now', text: 'now' });
        now.style.left = pct(Date.now());
        if (nowFrac > 0.94) now.classList.add('tick-end');
        this.axis.append(now);
      }

      this.renderLanes(pct, live);
      this.renderEvents();

      if (this.ops.length === 0) {
        clear(this.opsBox).append(h('p', { class: 'muted empty', text: live ? 'No operations yet.' : 'This execution recorded no operations.' }));
        this.rows.clear();
        return;
      }
      if (this.rows.size === 0) clear(this.opsBox);

      const seen = new Set();
      const logCount = new Map();
      for (const l of this.logs) if (l.op_id) logCount.set(l.op_id, (logCount.get(l.op_id) || 0) + 1);
      for (const o of this.ops) {
        seen.add(o.id);
        const sig = JSON.stringify(o) + '|' + (logCount.get(o.id) || 0);
        let row = this.rows.get(o.id);
        if (!row) {
          row = { sig: '' };
          row.line = h('div', { class: 'op-row', 'data-op': o.id, 'data-name': o.name, role: 'button', tabindex: '0' });
          row.detail = h('div', { class: 'op-detail', hidden: true });
          const toggle = () => {
            if (window.getSelection().toString()) return;
            if (this.expanded.has(o.id)) this.expanded.delete(o.id); else this.expanded.add(o.id);
            this.syncExpanded(row, o.id);
          };
          row.line.addEventListener('click', (ev) => { if (!ev.target.closest('a,button')) toggle(); });
          row.line.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); toggle(); } });
          this.opsBox.append(row.line, row.detail);
          this.rows.set(o.id, row);
        }
        if (row.sig !== sig) {
          row.sig = sig;
          this.fillRow(row, o);
        }
        this.placeBar(row, o, pct, live, (t) => (t - t0) / total);
        this.placeMarks(row, pct);
        this.syncExpanded(row, o.id);
      }
      for (const [id, row] of this.rows) {
        if (!seen.has(id)) { row.line.remove(); row.detail.remove(); this.rows.delete(id); }
      }
    }

    /** The invocations lane (one bar per invocation) and the logs lane (one tick per line). */
    renderLanes(pct, live) {
      const invs = this.hist.invocations || [];
      clear(this.invTrack);
      for (const i of invs) {
        const start = ms(i.started_at);
        const end = i.ended_at ? ms(i.ended_at) : (live ? Date.now() : ms(this.exec.ended_at || this.exec.updated_at));
        const outcome = i.outcome || 'RUNNING';
        const bad = ['CRASHED', 'TIMED_OUT', 'ABORTED'].includes(outcome);
        const tip = `invocation ${i.epoch}: ${label(outcome)}${i.status && i.outcome === 'FINISHED' ? ' (' + label(i.status) + ')' : ''}`
          + ` · ${fmtDuration(end - start)}${i.process ? ' · ' + i.process : ''}${i.error ? ' · ' + i.error : ''}`;
        const bar = h('div', {
          class: 'inv-bar ' + (bad ? 'inv-bad' : outcome === 'RUNNING' ? 'inv-run' : 'inv-ok'),
          title: tip, 'aria-label': tip, 'data-epoch': i.epoch, 'data-outcome': outcome,
        });
        bar.style.left = pct(start);
        bar.style.width = `calc(${pct(end)} - ${pct(start)})`;
        this.invTrack.append(bar);
      }
      const dropped = this.hist.invocations_dropped || 0;
      $('inv-summary').textContent = `${invs.length} invocation${invs.length === 1 ? '' : 's'}`
        + (dropped ? ` (${dropped} earlier not kept)` : '');
      clear(this.logTrack);
      for (const l of this.logs) {
        if (!Number.isFinite(l.time)) continue;
        const tip = `${l.level} ${fmtTime(new Date(l.time).toISOString())}${l.op_id ? ` [op ${l.op_id} #${l.attempt}]` : ''}: ${l.message}`;
        const tick = h('div', { class: 'log-tick log-' + String(l.level || '').toLowerCase(), title: tip, 'aria-label': tip });
        tick.style.left = pct(l.time);
        this.logTrack.append(tick);
      }
      this.logLane.hidden = this.logsGone === true;
      $('log-summary').textContent = `${this.logs.length} line${this.logs.length === 1 ? '' : 's'}`;
    }

    /** Invocation boundaries across an operation's track, and its attempts' bars. */
    placeMarks(row, pct) {
      clear(row.marks);
      for (const i of this.hist.invocations || []) {
        const mark = h('div', { class: 'inv-mark', title: `invocation ${i.epoch} starts` });
        mark.style.left = pct(ms(i.started_at));
        row.marks.append(mark);
      }
      for (const { a, bar } of row.attempts || []) {
        const start = ms(a.started_at);
        const end = ms(a.ended_at);
        bar.style.left = pct(start);
        bar.style.width = `calc(${pct(end)} - ${pct(start)})`;
      }
    }

    /** The history, oldest first: invocations, attempts, waits and log lines interleaved. */
    renderEvents() {
      const items = [];
      const add = (t, cls, text, extra) => { if (Number.isFinite(t)) items.push({ t, cls, text, extra, n: items.length }); };
      for (const i of this.hist.invocations || []) {
        add(ms(i.started_at), 'ev-inv', `Invocation ${i.epoch} started${i.process ? ' in ' + i.process : ''}`);
        if (i.ended_at) {
          add(ms(i.ended_at), 'ev-inv', `Invocation ${i.epoch} ${label(i.outcome)}${i.status && i.outcome === 'FINISHED' ? ' (' + label(i.status) + ')' : ''} after ${fmtDuration(ms(i.ended_at) - ms(i.started_at))}${i.error ? ': ' + i.error : ''}`);
        } else if (i.outcome) {
          add(ms(i.started_at) + 1, 'ev-bad', `Invocation ${i.epoch} ${label(i.outcome)}: it recorded no end`);
        }
      }
      for (const o of this.ops) {
        for (const a of o.attempts || []) {
          const bad = a.outcome !== 'SUCCEEDED';
          add(ms(a.ended_at), bad ? 'ev-bad' : 'ev-ok', `${o.type.toLowerCase()} “${o.name}” attempt ${a.attempt} ${label(a.outcome)}`
            + (a.error ? ': ' + errorText(a.error) : ''));
        }
      }
      for (const w of this.hist.waits || []) {
        add(ms(w.started_at), 'ev-wait', `${w.type.toLowerCase()} “${w.name}” started waiting${w.wake_at ? ' until ' + fmtTime(w.wake_at) : ''}`);
        if (w.ended_at) add(ms(w.ended_at), 'ev-wait', `${w.type.toLowerCase()} “${w.name}” ${label(w.status)}`);
      }
      for (const l of this.logs) {
        add(l.time, 'ev-log', `${l.level} ${l.message}`, l.op_id ? `op ${l.op_id} #${l.attempt}` : '');
      }
      items.sort((x, y) => x.t - y.t || x.n - y.n);
      const sig = items.length + ':' + JSON.stringify(items[items.length - 1] || null);
      if (sig === this.eventsSig) return;
      this.eventsSig = sig;
      const shown = items.slice(-500);
      const notes = [];
      if (items.length > shown.length) notes.push(`the last ${shown.length} of ${items.length}`);
      if (this.logsDropped) notes.push(`${this.logsDropped} earlier log lines dropped`);
      this.eventsNote.textContent = notes.join(' · ');
      clear(this.eventsBox).append(...shown.map((it) => h('li', { class: 'ev ' + it.cls },
        h('span', { class: 'ev-time', title: new Date(it.t).toISOString(), text: fmtTime(new Date(it.t).toISOString()) }),
        h('span', { class: 'ev-text', text: it.text }),
        it.extra ? h('span', { class: 'ev-where muted', text: it.extra }) : null)));
      if (!shown.length) this.eventsBox.append(h('li', { class: 'muted', text: 'Nothing recorded yet.' }));
    }

    /** Highlights attempt `n` in an operation's detail. */
    selectAttempt(row, n) {
      for (const item of row.detail.querySelectorAll('[data-attempt-item]')) {
        item.classList.toggle('selected', item.getAttribute('data-attempt-item') === String(n));
      }
    }

    syncExpanded(row, id) {
      const open = this.expanded.has(id);
      row.detail.hidden = !open;
      row.line.classList.toggle('open', open);
      row.line.setAttribute('aria-expanded', open ? 'true' : 'false');
    }

    fillRow(row, o) {
      const colour = OP_COLOUR[o.status] || 'grey';
      row.line.className = 'op-row op-status-' + o.status + (row.line.classList.contains('open') ? ' open' : '');
      const tags = [];
      if (o.type === 'STEP' && o.attempt > 1) {
        tags.push(h('span', { class: 'tag tag-warn', title: 'attempts so far', text: `${o.attempt} attempts` }));
      }
      const atts = o.attempts || [];
      const several = atts.length > 1 || atts.some((a) => a.outcome !== 'SUCCEEDED');
      row.bar = h('div', { class: 'op-bar op-' + colour });
      row.future = h('div', { class: 'op-bar op-future' });
      row.barLabel = h('span', { class: 'op-bar-label' });
      row.marks = h('div', { class: 'inv-marks', 'aria-hidden': 'true' });
      row.track = h('div', { class: 'op-track' }, row.marks, row.future, row.bar, row.barLabel);
      // Each attempt its own bar over the operation's span: failed ones red.
      row.attempts = [];
      if (several) {
        row.bar.classList.add('op-span');
        for (const a of atts) {
          const bad = a.outcome !== 'SUCCEEDED';
          const tip = `attempt ${a.attempt}: ${label(a.outcome)} · ${fmtDuration(a.duration_ms)}`
            + (a.error ? ` · ${errorText(a.error)}` : '');
          const bar = h('div', {
            class: 'att-bar ' + (bad ? 'att-bad' : 'att-ok'), title: tip, 'aria-label': tip,
            'data-attempt': a.attempt, 'data-outcome': a.outcome, role: 'button', tabindex: '0',
          });
          const pick = (ev) => {
            ev.stopPropagation();
            this.expanded.add(o.id);
            this.syncExpanded(row, o.id);
            this.selectAttempt(row, a.attempt);
          };
          bar.addEventListener('click', pick);
          bar.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(ev); } });
          row.attempts.push({ a, bar });
          row.track.append(bar);
        }
      }

      let resultCell;
      if (o.status === 'SUCCEEDED') {
        resultCell = o.result === undefined || o.result === null
          ? h('span', { class: 'muted', text: o.type === 'SLEEP' ? 'slept' : 'null' })
          : h('code', { class: 'preview', text: preview(o.result, 60), title: preview(o.result, 400) });
      } else if (o.error) {
        const text = (o.status === 'PENDING' ? 'last error: ' : '') + errorText(o.error);
        resultCell = h('span', { class: 'preview err', text, title: text });
      } else if ((o.status === 'PENDING' || o.status === 'STARTED') && OUTSIDE.has(o.type)) {
        resultCell = h('span', { class: 'muted' }, o.type === 'CALLBACK' ? 'waiting for the callback' : 'waiting for the event',
          o.wake_at ? h('span', {}, ' · times out ', clock(o.wake_at, 'until')) : null);
      } else if (o.status === 'PENDING' && o.wake_at) {
        resultCell = h('span', { class: 'muted' }, o.type === 'SLEEP' ? 'wakes ' : 'next try ', clock(o.wake_at, 'until'));
      } else if (o.status === 'PENDING' || o.status === 'STARTED') {
        resultCell = h('span', { class: 'muted', text: 'running…' });
      } else {
        resultCell = h('span', { class: 'muted', text: label(o.status) });
      }
      // Operations of child contexts (ids like 3.1) sit under their parent.
      const depth = String(o.id).split('.').length - 1;
      const labelBox = h('div', { class: 'op-label' + (depth ? ' op-nested' : '') });
      if (depth) labelBox.style.paddingLeft = `${Math.min(depth, 6) * 14}px`;
      clear(row.line).append(
        append(labelBox, [
          h('span', { class: 'chev', 'aria-hidden': 'true' }),
          h('span', { class: 'dot st-op-' + colour }),
          h('span', { class: 'op-name', text: o.name, title: o.name }),
          h('span', { class: 'op-type', text: o.type.toLowerCase() }),
          tags]),
        row.track,
        h('div', { class: 'op-result' }, resultCell));

      // The detail panel.
      const started = ms(o.started_at);
      const ended = o.ended_at ? ms(o.ended_at) : NaN;
      const facts = h('dl', { class: 'facts' });
      const fact = (k, ...v) => facts.append(h('dt', { text: k }), h('dd', {}, ...v));
      fact('Status', badge(o.status));
      fact('Type', o.type.toLowerCase());
      fact('Operation id', h('code', { text: o.id }));
      if (o.attempt) fact('Attempt', String(o.attempt));
      fact('Started', h('span', { title: o.started_at, text: fmtTime(o.started_at) }));
      if (o.ended_at) fact('Ended', h('span', { title: o.ended_at, text: fmtTime(o.ended_at) }), h('span', { class: 'muted', text: ` · took ${fmtDuration(ended - started)}` }));
      if (o.wake_at) fact(o.type === 'SLEEP' ? 'Wakes at' : OUTSIDE.has(o.type) ? 'Times out at' : 'Next attempt', fmtTime(o.wake_at), o.status === 'PENDING' ? h('span', { class: 'muted' }, ' (', clock(o.wake_at, 'until'), ')') : null);
      if (o.callback_id) fact('Callback id', h('code', { class: 'break', text: o.callback_id }));
      const child = o.child_execution_id || o.child_id;
      if (child) fact('Child execution', h('a', { href: execHref(child), 'data-nav': true, class: 'mono', text: child }));

      const panels = [];
      const settled = o.status !== 'PENDING' && o.status !== 'STARTED';
      if (settled && o.result !== undefined && o.result !== null) panels.push(h('div', { class: 'detail-panel' }, h('h3', { text: 'Result' }), jsonView(o.result)));
      if (o.error) panels.push(h('div', { class: 'detail-panel' }, h('h3', { text: o.status === 'PENDING' ? `Error of attempt ${o.attempt}` : 'Error' }), jsonView(o.error, { error: true })));
      if (!panels.length) panels.push(h('div', { class: 'detail-panel muted', text: o.status === 'SUCCEEDED' ? 'No result (null).' : 'No result yet.' }));
      if (several) {
        const list = h('ol', { class: 'attempts' });
        if (o.attempts_truncated) {
          list.append(h('li', { class: 'muted attempts-truncated', text: `${o.attempts_dropped} earlier attempt${o.attempts_dropped === 1 ? '' : 's'} not kept (the history keeps the last ${this.hist.history_limit || 100})` }));
        }
        for (const a of atts) {
          const bad = a.outcome !== 'SUCCEEDED';
          list.append(h('li', { class: 'attempt ' + (bad ? 'attempt-bad' : 'attempt-ok'), 'data-attempt-item': a.attempt },
            h('div', { class: 'attempt-head' },
              h('strong', { text: `Attempt ${a.attempt}` }),
              h('span', { class: 'tag ' + (bad ? 'tag-bad' : 'tag-ok'), text: label(a.outcome) }),
              h('span', { class: 'muted', text: `${fmtTime(a.started_at)} · took ${fmtDuration(a.duration_ms)}${a.epoch ? ' · invocation ' + a.epoch : ''}${a.retry_at ? ' · next at ' + fmtTime(a.retry_at) : ''}` })),
            a.error ? h('div', { class: 'attempt-error err', text: errorText(a.error) }) : null,
            a.error && a.error.trace ? h('pre', { class: 'attempt-trace', text: a.error.trace }) : null));
        }
        panels.push(h('div', { class: 'detail-panel attempts-panel' }, h('h3', { text: 'Attempts' }), list));
      }
      const opLogs = this.logs.filter((l) => l.op_id === o.id);
      if (opLogs.length) {
        panels.push(h('div', { class: 'detail-panel' }, h('h3', { text: 'Logs' }),
          h('ol', { class: 'op-logs' }, opLogs.map((l) => h('li', {},
            h('span', { class: 'muted', text: `#${l.attempt} ${l.level} ` }), l.message)))));
      }
      const extra = [];
      if (o.type === 'CALLBACK' && !FINAL.has(o.status)) {
        extra.push(h('div', { class: 'detail-actions' }, this.callbackButtons(o)));
      }
      extra.push(h('div', { class: 'detail-actions' },
        h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'reset-op', text: 'Reset from here…', title: 'A new execution that runs again from this operation', onclick: (ev) => { ev.stopPropagation(); this.resetTo(o); } })));
      clear(row.detail).append(h('div', { class: 'detail-grid' }, facts, h('div', { class: 'detail-panels' }, panels, extra)));
    }

    placeBar(row, o, pct, live, frac) {
      const start = ms(o.started_at);
      const end = o.ended_at ? ms(o.ended_at) : (live ? Date.now() : ms(this.exec.ended_at || this.exec.updated_at));
      row.bar.style.left = pct(start);
      row.bar.style.width = `calc(${pct(end)} - ${pct(start)})`;
      let text = fmtDuration(end - start);
      let right = end;
      row.future.hidden = true;
      if (o.status === 'PENDING' && OUTSIDE.has(o.type) && live) {
        text = 'waiting ' + fmtDuration(end - start);
      } else if (o.status === 'PENDING' && o.wake_at && live) {
        const wake = ms(o.wake_at);
        right = Math.max(wake, end);
        row.future.hidden = false;
        row.future.style.left = pct(end);
        row.future.style.width = `calc(${pct(right)} - ${pct(end)})`;
        text = (o.type === 'SLEEP' ? 'wakes ' : 'retry ') + fmtUntil(wake);
      } else if (o.status === 'STARTED' && live) {
        text = 'running · ' + text;
      }
      row.barLabel.textContent = text;
      // Inside a wide bar (or a wide wait ahead); else right of it; else
      // (near the end of the chart) left of it.
      const inside = row.future.hidden ? frac(right) - frac(start) > 0.17 : frac(right) - frac(end) > 0.17;
      const after = !inside && frac(right) < 0.8;
      row.barLabel.classList.toggle('label-inside', inside);
      row.barLabel.classList.toggle('label-on-future', inside && !row.future.hidden);
      row.barLabel.classList.toggle('label-left', !inside && !after);
      row.barLabel.style.left = pct(inside || after ? right : start);
    }
  }

  // ------------------------------------------------------------------ router

  function route() {
    syncSignout();
    const m = location.pathname.match(/^\/ui\/executions\/([^/]+)\/?$/);
    let view;
    if (m) {
      let id;
      try { id = decodeURIComponent(m[1]); } catch { id = m[1]; }
      view = new ExecutionView(id);
    } else {
      view = new ListView(new URLSearchParams(location.search));
    }
    authNeeded = false;
    poller.start(view);
  }

  function navigate(href) {
    history.pushState(null, '', href);
    window.scrollTo(0, 0);
    route();
  }

  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[data-nav]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    const href = a.getAttribute('href');
    if (href === '/ui/' && poller.view instanceof ListView && location.pathname === '/ui/') return;
    navigate(href);
  });
  window.addEventListener('popstate', route);

  route();
})();
