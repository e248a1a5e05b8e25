// The console: a client of the public HTTP API, nothing else. Views are
// chosen by the URL hash (#/, #/new, #/datasources/<name>); each view polls
// the API while it is shown and redraws only the regions whose data changed,
// keeping keyboard focus where it was.
import { fill, fmtBytes, fmtDuration, fmtInt, fmtTime, h, relTime } from './dom.js';
import { historyChart } from './chart.js';

const STATUSES = ['queued', 'running', 'success', 'failure', 'pending_retry', 'paused', 'cancelled'];
const TOKEN_KEY = 's3ch.console.token';
const main = document.getElementById('main');
const toastEl = document.getElementById('toast');
const bannerEl = document.getElementById('readonly-banner');
const sessionEl = document.getElementById('session');

// The token lives in sessionStorage only: it is gone when the tab closes and is never rendered.
const session = { token: sessionStorage.getItem(TOKEN_KEY), readOnlyReason: null, authRequired: false };

class ApiProblem extends Error {
  constructor(status, body) {
    const detail = body?.detail ?? body?.title ?? `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.detail = detail;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiProblem(0, { detail: `the API did not answer (${err.message})` });
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 300) };
  }
  if (res.status === 401) {
    session.authRequired = true;
    showLogin(session.token ? `That token was not accepted: ${data?.detail ?? 'unauthorized'}.` : null);
    throw new ApiProblem(401, data);
  }
  if (!res.ok) throw new ApiProblem(res.status, data);
  return data;
}

const enc = encodeURIComponent;
const dsPath = (name, rest = '') => `/v1/datasources/${enc(name)}${rest}`;

// ---------------------------------------------------------------------------
// Session: token prompt and role

/** Whether this token may change things: the API says (GET /v1/whoami); a bad token gets 401. */
async function probeRole() {
  session.readOnlyReason = null;
  try {
    const who = await api('GET', '/v1/whoami');
    if (!who.canChange) session.readOnlyReason = who.reason;
  } catch (err) {
    if (err.status === 401) return false;
    // A token scoped to something else (e.g. notifications only) can read nothing here either.
    if (err.status === 403) session.readOnlyReason = err.detail;
  }
  renderSession();
  return true;
}

function renderSession() {
  bannerEl.hidden = !session.readOnlyReason;
  fill(bannerEl, session.readOnlyReason ? `Read-only access: ${session.readOnlyReason}. Every action is disabled.` : '');
  fill(sessionEl,
    session.token
      ? [h('span', { class: 'muted' }, session.readOnlyReason ? 'Read-only token' : 'Admin token'),
        h('button', { type: 'button', class: 'link', onclick: forgetToken }, 'Forget token')]
      : null);
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = null;
  session.readOnlyReason = null;
  renderSession();
  if (session.authRequired) showLogin(null);
  else route();
}

let loginShown = false;
function showLogin(error) {
  view?.stop();
  view = null;
  loginShown = true;
  document.title = 'Sign in · S3 → ClickHouse';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help' + (error ? ' token-error' : '') });
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'login-title', onsubmit: async (e) => {
    e.preventDefault();
    session.token = input.value.trim();
    sessionStorage.setItem(TOKEN_KEY, session.token);
    loginShown = false;
    if (await probeRole()) route();
  } },
  h('h1', { id: 'login-title' }, 'API token'),
  h('p', { id: 'token-help' }, 'This connector requires a bearer token. It is kept in this browser tab only (sessionStorage) and sent with every API call.'),
  error ? h('p', { id: 'token-error', class: 'field-error', role: 'alert' }, error) : null,
  h('div', { class: 'field' }, h('label', { for: 'token' }, 'Token'), input),
  h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Continue')));
  fill(main, form);
  renderSession();
  input.focus();
}

// ---------------------------------------------------------------------------
// Shared pieces

let toastTimer = null;
function toast(text, kind = 'ok') {
  toastEl.className = `toast show ${kind}`;
  toastEl.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => toastEl.classList.remove('show'), 5000);
}

function failed(err, what) {
  if (err?.status === 401) return;
  toast(`${what} failed: ${err.detail ?? err.message}`, 'error');
}

/** Run fn every ms while the tab is visible; a failed poll shows once in `errorEl` and polling goes on. */
function poller(fn, ms, errorEl) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
        if (errorEl) fill(errorEl).hidden = true;
      } catch (err) {
        if (err.status === 401) {
          stopped = true;
          return;
        }
        if (errorEl) fill(errorEl, `Could not refresh: ${err.detail ?? err.message}`).hidden = false;
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  void tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    now() {
      clearTimeout(timer);
      void tick();
    },
  };
}

/** Redraw `el` with `render()`, putting focus back on the element with the same data-focus key. */
function redraw(el, render) {
  const active = document.activeElement;
  const key = el.contains(active) ? active?.dataset?.focus : null;
  fill(el, render());
  if (key) el.querySelector(`[data-focus="${CSS.escape(key)}"]`)?.focus();
}

function stateBadge(state) {
  return h('span', { class: `badge state-${state}` }, state);
}

function fileChips(files, { link } = {}) {
  const present = STATUSES.filter((s) => files[s] > 0);
  if (!present.length) return h('span', { class: 'muted' }, 'no files yet');
  return h('span', { class: 'chips' }, present.map((s) => h('span', { class: `chip status-${s}` }, `${fmtInt(files[s])} ${s.replace('_', ' ')}`)));
}

/** A button for a change; disabled (with the reason as its description) for read-only tokens. */
function actionButton(label, { focus, onclick, danger, ariaLabel, disabledReason }) {
  const reason = session.readOnlyReason ? `Read-only token: ${session.readOnlyReason}` : disabledReason;
  return h('button', {
    type: 'button', class: danger ? 'danger' : null, 'data-focus': focus, 'aria-label': ariaLabel, disabled: !!reason, title: reason ?? null,
    onclick: async (e) => {
      const btn = e.currentTarget;
      btn.disabled = true;
      try {
        await onclick();
      } finally {
        btn.disabled = !!reason;
      }
    },
  }, label);
}

/** Sync now, pause/resume, retry failed, delete: the same on the list and on a data source's page. */
function dsActions(ds, refresh, { afterDelete } = {}) {
  const { name } = ds;
  const state = ds.status.state;
  const deleting = state === 'deleting' ? 'being deleted' : null;
  const paused = state === 'paused';
  return h('div', { class: 'actions' },
    actionButton('Sync now', { focus: `${name}:sync`, ariaLabel: `Sync now: ${name}`, disabledReason: deleting ?? (paused ? 'paused: resume first' : null), onclick: async () => {
      try {
        await api('POST', dsPath(name, '/sync'));
        toast(`Sync of ${name} requested`);
        refresh();
      } catch (err) {
        failed(err, 'Sync');
      }
    } }),
    actionButton(paused ? 'Resume' : 'Pause', { focus: `${name}:pause`, ariaLabel: `${paused ? 'Resume' : 'Pause'} ${name}`, disabledReason: deleting, onclick: async () => {
      try {
        await api('POST', dsPath(name, paused ? '/resume' : '/pause'));
        toast(`${name} ${paused ? 'resumed' : 'paused'}`);
        refresh();
      } catch (err) {
        failed(err, paused ? 'Resume' : 'Pause');
      }
    } }),
    actionButton('Retry failed', { focus: `${name}:retry`, ariaLabel: `Retry failed files of ${name}`, disabledReason: deleting ?? (ds.stats.files.failure + ds.stats.files.cancelled === 0 ? 'no failed or cancelled files' : null), onclick: async () => {
      try {
        await api('POST', dsPath(name, '/retry'));
        toast(`Failed files of ${name} queued again`);
        refresh();
      } catch (err) {
        failed(err, 'Retry');
      }
    } }),
    actionButton('Delete…', { focus: `${name}:delete`, ariaLabel: `Delete ${name}`, danger: true, disabledReason: deleting, onclick: async () => {
      const choice = await confirmDelete(ds);
      if (!choice) return;
      try {
        await api('DELETE', dsPath(name, `?dropTable=${choice.dropTable}&dropLedger=${choice.dropLedger}`));
        toast(`${name} deleted${choice.dropTable ? ` and table ${ds.table} dropped` : ''}`);
        if (afterDelete) afterDelete();
        else refresh();
      } catch (err) {
        failed(err, 'Delete');
      }
    } }));
}

function confirmDelete(ds) {
  return new Promise((resolve) => {
    const dropTable = h('input', { type: 'checkbox', id: 'drop-table' });
    const dropLedger = h('input', { type: 'checkbox', id: 'drop-ledger' });
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'dlg-title', 'aria-describedby': 'dlg-desc' },
      h('h2', { id: 'dlg-title' }, `Delete data source ${ds.name}?`),
      h('p', { id: 'dlg-desc' }, 'Its workflow stops and no more files are imported. This cannot be undone.'),
      h('div', { class: 'check' }, dropTable, h('label', { for: 'drop-table' }, `Also drop the table ${ds.table} and its quarantine table (their rows are lost)`)),
      h('div', { class: 'check' }, dropLedger, h('label', { for: 'drop-ledger' }, 'Also forget the file history (ledger), so the same files would import again')),
      h('div', { class: 'form-actions' },
        h('button', { type: 'button', onclick: () => dlg.close('cancel') }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', onclick: () => dlg.close('delete') }, `Delete ${ds.name}`)));
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'delete' ? { dropTable: dropTable.checked, dropLedger: dropLedger.checked } : null);
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

function temporalLink(name) {
  const ns = document.querySelector('meta[name="s3ch-temporal-namespace"]')?.content || 'default';
  const base = document.querySelector('meta[name="s3ch-temporal-ui"]')?.content || `${location.protocol}//${location.hostname}:8233`;
  return `${base.replace(/\/$/, '')}/namespaces/${enc(ns)}/workflows/${enc(`datasource:${name}`)}`;
}

// ---------------------------------------------------------------------------
// Data sources list

function listView() {
  document.title = 'Data sources · S3 → ClickHouse';
  const errorEl = h('p', { class: 'banner error', role: 'alert', hidden: true });
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  fill(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Data sources'), h('a', { class: 'button primary', href: '#/new' }, 'New data source')),
    errorEl, body);
  let lastSig = '';
  let lastAt = 0;
  const p = poller(async () => {
    // The list is paged; follow the cursor so the console shows every data source.
    // The event queues are asked for beside the list pages, not after them.
    const eventsAsked = api('GET', '/v1/events').catch(() => null);
    const items = [];
    let cursor = null;
    for (let pages = 0; pages < 50; pages++) {
      const page = await api('GET', `/v1/datasources${cursor ? `?cursor=${enc(cursor)}` : ''}`);
      items.push(...page.items);
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    const events = await eventsAsked;
    const queues = events?.queues ?? [];
    const sig = JSON.stringify([items, queues]) + session.readOnlyReason;
    // Relative times ("12 s ago") age, so redraw now and then even when nothing changed.
    if (sig === lastSig && Date.now() - lastAt < 15_000) return;
    lastSig = sig;
    lastAt = Date.now();
    redraw(body, () => [items.length ? dsTable(items, () => p.now()) : emptyList(), queues.length ? queueTable(queues) : null]);
  }, 2500, errorEl);
  return p;
}

/** The SQS queues this process's worker consumes: what came in, what went out, what is stuck. */
function queueTable(queues) {
  const cols = ['Connection', 'Queue', 'Polling', 'Received', 'Matched', 'Deleted', 'Redelivered', 'Unparseable', 'Ignored', 'Lag'];
  return h('section', { class: 'queues', 'aria-label': 'Event queues' },
    h('h2', {}, 'Event queues (SQS)'),
    h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Event queues table', tabindex: 0 },
      h('table', { class: 'queue-table' },
        h('thead', {}, h('tr', {}, cols.map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, queues.map((q) => h('tr', {},
          h('td', {}, q.connection),
          h('td', {}, h('code', {}, q.queueUrl)),
          h('td', {}, q.polling ? 'yes' : h('span', { class: 'error-text' }, q.lastError ?? 'no')),
          h('td', { class: 'num' }, fmtInt(q.received)),
          h('td', { class: 'num' }, fmtInt(q.matched)),
          h('td', { class: 'num' }, fmtInt(q.deleted)),
          h('td', { class: 'num' }, fmtInt(q.redelivered)),
          h('td', { class: 'num' }, q.unparseable ? h('span', { class: 'error-text', title: q.lastUnparseable ?? '' }, fmtInt(q.unparseable)) : '0'),
          h('td', { class: 'num' }, fmtInt(q.unmatched + q.testEvents)),
          h('td', { class: 'num' }, `${q.lagSeconds.toFixed(1)} s`)))))));
}

function emptyList() {
  return h('div', { class: 'card empty' },
    h('h2', {}, 'No data sources yet'),
    h('p', {}, 'A data source continuously loads the files of an S3 bucket URI into a ClickHouse table.'),
    h('a', { class: 'button primary', href: '#/new' }, 'Create the first one'));
}

function dsTable(items, refresh) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Data sources table', tabindex: 0 },
    h('table', { class: 'ds-table' },
      h('caption', { class: 'sr-only' }, `${items.length} data sources`),
      h('thead', {}, h('tr', {}, ['Name', 'Source', 'State', 'Rows', 'Files', 'Last run', 'Next run', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, items.map((ds) => h('tr', { 'data-name': ds.name },
        h('th', { scope: 'row' }, h('a', { href: `#/datasources/${ds.name}`, 'data-focus': `${ds.name}:open` }, ds.name)),
        h('td', { class: 'source', 'data-label': 'Source' }, h('code', { class: 'uri' }, ds.bucketUri), h('div', { class: 'meta' }, `${ds.format} · ${ds.schedule} · ${ds.mode}`)),
        h('td', { 'data-label': 'State' }, stateBadge(ds.status.state), ds.status.backlog ? h('span', { class: 'chip' }, 'backlog') : null,
          ds.status.error ? h('div', { class: 'error-text' }, ds.status.error) : null),
        h('td', { class: 'num', 'data-label': 'Rows' }, fmtInt(ds.stats.rows)),
        h('td', { 'data-label': 'Files' }, fileChips(ds.stats.files)),
        h('td', { 'data-label': 'Last run' }, relTime(ds.status.lastRunAt)),
        h('td', { 'data-label': 'Next run' }, ds.status.state === 'paused' ? h('span', { class: 'muted' }, 'paused') : relTime(ds.status.nextRunAt)),
        h('td', {}, dsActions(ds, refresh)))))));
}

// ---------------------------------------------------------------------------
// One data source

function section(title, id, ...children) {
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

function specOf(ds) {
  const { status, stats, inferredFrom, schemaChanges, lastRun, ...spec } = ds;
  return spec;
}

/** The spec without the defaults the `.datasource` format has no key for. */
function tinybirdSpec(spec) {
  const s = structuredClone(spec);
  if (s.table === s.name) delete s.table;
  if (s.mode === 'tracked') delete s.mode;
  const c = s.csv;
  if (c && c.delimiter === ',' && c.header === true && c.skipLines === 0 && c.quote === '"') delete s.csv;
  const l = s.limits;
  if (l && l.maxFilesPerRun === 0 && l.concurrency === 4 && l.maxFileBytes === 0 && l.maxRowBytes === 2 * 1024 * 1024) delete s.limits;
  if (s.compression === 'auto') delete s.compression;
  return s;
}

function detailView(name) {
  document.title = `${name} · S3 → ClickHouse`;
  const errorEl = h('p', { class: 'banner error', role: 'alert', hidden: true });
  const head = h('div', { class: 'page-head' }, h('h1', {}, name));
  const overview = h('div', { class: 'overview' });
  const chartEl = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const filesEl = h('div');
  const historyEl = h('div', { id: 'lifecycle', tabindex: -1 });
  const quarantineEl = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const specEl = h('div');

  // File table state: filter, search, the cursor stack for paging, the selection for bulk retry.
  const files = { status: '', search: '', cursors: [null], page: 0, selected: new Set(), items: [], nextCursor: null };
  const statusSelect = h('select', { id: 'file-status', onchange: () => { files.status = statusSelect.value; resetPaging(); } },
    h('option', { value: '' }, 'All statuses'), STATUSES.map((s) => h('option', { value: s }, s)));
  let searchTimer = null;
  const searchInput = h('input', { id: 'file-search', type: 'search', placeholder: 'part of a key', oninput: () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { files.search = searchInput.value.trim(); resetPaging(); }, 300);
  } });
  const filesTable = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const retrySelected = actionButton('Retry selected', { focus: 'retry-selected', onclick: async () => {
    if (!files.selected.size) return toast('Select files to retry first', 'error');
    try {
      await api('POST', dsPath(name, '/retry'), { keys: [...files.selected] });
      toast(`${files.selected.size} file(s) queued again`);
      files.selected.clear();
      p.now();
    } catch (err) {
      failed(err, 'Retry');
    }
  } });
  fill(filesEl,
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter files', onsubmit: (e) => e.preventDefault() },
      h('div', { class: 'field' }, h('label', { for: 'file-status' }, 'Status'), statusSelect),
      h('div', { class: 'field grow' }, h('label', { for: 'file-search' }, 'Key contains'), searchInput),
      h('div', { class: 'field' }, retrySelected)),
    filesTable);

  function resetPaging() {
    files.cursors = [null];
    files.page = 0;
    p.now();
  }

  fill(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Data sources'), ' / ', h('span', { 'aria-current': 'page' }, name)),
    head, errorEl, overview,
    section('Sync history', 'h-history', h('p', { class: 'muted' }, 'Files and rows per sync run; runs with failed files are marked.'), chartEl),
    section('Files', 'h-files', filesEl, historyEl),
    section('Quarantine', 'h-quarantine', h('p', { class: 'muted' }, 'Rows that did not fit the table, kept with their file, line, raw text and reason.'), quarantineEl),
    section('Spec', 'h-spec', specEl));

  const sig = {};
  const changed = (k, v) => {
    const s = JSON.stringify(v) + session.readOnlyReason;
    if (sig[k] === s) return false;
    sig[k] = s;
    return true;
  };
  let deleted = false;
  let tick = 0;

  const p = poller(async () => {
    if (deleted) return;
    let ds;
    try {
      ds = await api('GET', dsPath(name));
    } catch (err) {
      if (err.status === 404) {
        fill(main, h('div', { class: 'card empty' }, h('h1', {}, `No data source named ${name}`), h('p', {}, 'It may have been deleted.'), h('a', { href: '#/' }, 'Back to the data sources')));
        p.stop();
        return;
      }
      throw err;
    }
    const q = new URLSearchParams({ limit: '25' });
    if (files.status) q.set('status', files.status);
    if (files.search) q.set('search', files.search);
    if (files.cursors[files.page]) q.set('cursor', files.cursors[files.page]);
    const [fileList, runs, quarantine] = await Promise.all([
      api('GET', dsPath(name, `/files?${q}`)),
      api('GET', dsPath(name, '/runs?limit=60')),
      api('GET', dsPath(name, '/quarantine?limit=100')),
    ]);
    tick++;
    if (changed('head', [ds.status, ds.stats]) || tick % 6 === 0) {
      redraw(head, () => [
        h('h1', {}, name, ' ', stateBadge(ds.status.state)),
        dsActions(ds, () => p.now(), { afterDelete: () => { deleted = true; location.hash = '#/'; } }),
        h('a', { class: 'external', href: temporalLink(name), target: '_blank', rel: 'noopener' }, 'Workflow in Temporal UI ↗')]);
      redraw(overview, () => overviewCards(ds));
    }
    if (changed('runs', runs.items)) fill(chartEl, historyChart(runs.items));
    if (changed('files', [fileList, [...files.selected], files.page])) {
      files.items = fileList.items;
      files.nextCursor = fileList.nextCursor;
      redraw(filesTable, () => fileTable());
    }
    if (changed('quarantine', quarantine.items)) fill(quarantineEl, quarantineTable(quarantine.items));
    if (changed('spec', specOf(ds))) await renderSpec(specEl, specOf(ds));
  }, 2000, errorEl);

  function fileTable() {
    const pager = h('div', { class: 'pager' },
      h('button', { type: 'button', 'data-focus': 'newer', disabled: files.page === 0, onclick: () => { files.page--; p.now(); } }, '← Newer'),
      h('span', { class: 'muted' }, `Page ${files.page + 1}`),
      h('button', { type: 'button', 'data-focus': 'older', disabled: !files.nextCursor, onclick: () => {
        files.cursors[files.page + 1] = files.nextCursor;
        files.page++;
        p.now();
      } }, 'Older →'));
    if (!files.items.length) {
      return [h('p', { class: 'muted empty-files' }, files.status || files.search ? 'No file matches this filter.' : 'No file has been seen yet.'), pager];
    }
    return [h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Files table', tabindex: 0 },
      h('table', { class: 'files-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Select')),
          ['Key', 'Status', 'Rows', 'Quarantined', 'Size', 'Attempts', 'Updated', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, files.items.map((f) => h('tr', { 'data-key': f.key, 'data-status': f.status },
          h('td', {}, h('input', { type: 'checkbox', 'aria-label': `Select ${f.key}`, 'data-focus': `sel:${f.key}`, checked: files.selected.has(f.key), disabled: !!session.readOnlyReason,
            onchange: (e) => (e.target.checked ? files.selected.add(f.key) : files.selected.delete(f.key)) })),
          h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link key', 'data-focus': `key:${f.key}`, 'aria-label': `Lifecycle of ${f.key}`, onclick: () => showLifecycle(f.key) }, f.key)),
          h('td', {}, h('span', { class: `chip status-${f.status}` }, f.status)),
          h('td', { class: 'num' }, fmtInt(f.rows)),
          h('td', { class: 'num' }, f.quarantinedRows ? fmtInt(f.quarantinedRows) : '0'),
          h('td', { class: 'num' }, fmtBytes(f.size)),
          h('td', { class: 'num' }, f.attempts),
          h('td', {}, relTime(f.updatedAt)),
          h('td', { class: 'error-text' }, f.error ?? '')))))),
    pager];
  }

  async function showLifecycle(key) {
    fill(historyEl, h('p', { class: 'muted' }, `Loading the lifecycle of ${key}…`));
    try {
      const hist = await api('GET', dsPath(name, `/files/history?key=${enc(key)}`));
      fill(historyEl,
        h('div', { class: 'lifecycle-head' }, h('h3', {}, 'Lifecycle of ', h('code', {}, key)),
          h('button', { type: 'button', class: 'link', onclick: () => fill(historyEl) }, 'Close')),
        h('ol', { class: 'timeline' }, hist.items.map((t) => h('li', { class: `status-${t.status}` },
          h('span', { class: `chip status-${t.status}` }, t.status),
          h('span', {}, fmtTime(t.at)),
          h('span', { class: 'muted' }, t.durationMs === null ? 'current' : `for ${fmtDuration(t.durationMs)}`),
          h('span', { class: 'muted' }, `attempt ${t.attempt}`),
          t.rows ? h('span', {}, `${fmtInt(t.rows)} rows`) : null,
          t.error ? h('span', { class: 'error-text' }, t.error) : null))));
      historyEl.focus();
    } catch (err) {
      fill(historyEl, h('p', { class: 'error-text' }, `Could not load the lifecycle: ${err.detail ?? err.message}`));
    }
  }

  return p;
}

function overviewCards(ds) {
  const st = ds.status;
  const stat = (label, value) => h('div', { class: 'stat' }, h('dt', {}, label), h('dd', {}, value));
  return [
    st.error ? h('p', { class: 'banner error' }, h('strong', {}, 'Error: '), st.error) : null,
    h('dl', { class: 'stats' },
      stat('Rows', fmtInt(ds.stats.rows)),
      stat('Bytes', fmtBytes(ds.stats.bytes)),
      stat('Quarantined rows', fmtInt(ds.stats.quarantinedRows)),
      stat('Last run', relTime(st.lastRunAt)),
      stat('Next run', st.state === 'paused' ? 'paused' : relTime(st.nextRunAt)),
      stat('Backlog', st.backlog ? 'yes, continuing' : 'none'),
      stat('In flight', fmtInt(st.inFlight?.length ?? 0)),
      // Notification health: keys that event notifications (webhook, SQS) named since the API process started.
      ds.notifications ? stat('Events', ds.notifications.lastEventAt
        ? h('span', {}, fmtInt(ds.notifications.events), ' · last ', relTime(ds.notifications.lastEventAt))
        : 'none yet') : null),
    h('div', { class: 'files-summary' }, h('span', { class: 'muted' }, 'Files: '), fileChips(ds.stats.files)),
    h('dl', { class: 'props' },
      h('dt', {}, 'Bucket URI'), h('dd', { class: 'wide' }, h('code', {}, ds.bucketUri)),
      h('dt', {}, 'Connection'), h('dd', {}, ds.connection),
      h('dt', {}, 'Format'), h('dd', {}, `${ds.format}${ds.compression && ds.compression !== 'auto' ? ` (${ds.compression})` : ''}`),
      h('dt', {}, 'Schedule'), h('dd', {}, ds.schedule),
      h('dt', {}, 'Mode'), h('dd', {}, ds.mode),
      h('dt', {}, 'Table'), h('dd', {}, h('code', {}, ds.table))),
  ];
}

function quarantineTable(items) {
  if (!items.length) return h('p', { class: 'muted' }, 'No quarantined rows.');
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Quarantined rows', tabindex: 0 },
    h('table', { class: 'quarantine-table' },
      h('thead', {}, h('tr', {}, ['File', 'Line', 'Column', 'Raw text', 'Reason'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, items.map((r) => h('tr', {},
        h('td', {}, h('code', {}, r.key)),
        h('td', { class: 'num' }, fmtInt(r.line)),
        h('td', {}, r.column ?? '—'),
        h('td', {}, h('code', { class: 'raw' }, r.raw)),
        h('td', { class: 'error-text' }, r.error))))));
}

async function renderSpec(el, spec) {
  const jsonText = JSON.stringify(spec, null, 2);
  let dsText = null;
  let dsProblem = null;
  try {
    const { toDatasourceFile } = await import('/console/datasource-file.js');
    dsText = toDatasourceFile(tinybirdSpec(spec));
  } catch (err) {
    // The writer names what the format cannot say (renamed columns, ordered mode, CSV options...).
    dsProblem = err.message;
  }
  const block = (title, id, text) => text === null
    ? h('div', { class: 'spec-block' }, h('div', { class: 'spec-head' }, h('h3', { id }, title)), h('p', { class: 'note', id: `${id}-note` }, `Not available: ${dsProblem}.`))
    : h('div', { class: 'spec-block' },
    h('div', { class: 'spec-head' }, h('h3', { id }, title),
      h('button', { type: 'button', onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          toast(`${title} copied`);
        } catch {
          toast('The browser refused the clipboard; select the text instead', 'error');
        }
      } }, `Copy ${title}`)),
    h('pre', { tabindex: 0, 'aria-labelledby': id }, h('code', {}, text)));
  fill(el, h('div', { class: 'spec-grid' }, block('JSON', 'spec-json', jsonText), block('.datasource', 'spec-datasource', dsText)));
}

// ---------------------------------------------------------------------------
// Create

const TYPES = ['String', 'LowCardinality(String)', 'Int32', 'Int64', 'UInt32', 'UInt64', 'Float32', 'Float64', 'Bool', 'Date', 'DateTime', 'DateTime64(3)', 'UUID', 'Nullable(String)', 'Nullable(Int64)', 'Nullable(Float64)', 'Nullable(DateTime)', 'Array(String)', 'JSON'];
const isTimeType = (t) => /^(Nullable\()?(Date|Date32|DateTime|DateTime64)\b/.test(t.trim());

function createView() {
  document.title = 'New data source · S3 → ClickHouse';
  const field = (id, label, input, help) => h('div', { class: 'field' },
    h('label', { for: id }, label), input, help ? h('p', { class: 'help', id: `${id}-help` }, help) : null);
  const nameIn = h('input', { id: 'ds-name', name: 'name', 'data-field': 'name', required: true, autocomplete: 'off', pattern: '[a-z][a-z0-9_]{0,62}', 'aria-describedby': 'ds-name-help' });
  const connIn = h('select', { id: 'ds-connection', 'data-field': 'connection', required: true }, h('option', { value: '' }, 'Loading…'));
  const uriIn = h('input', { id: 'ds-uri', 'data-field': 'bucketUri', required: true, autocomplete: 'off', placeholder: 's3://bucket/prefix/**/*.csv.gz', 'aria-describedby': 'ds-uri-help', class: 'wide' });
  const formatIn = h('select', { id: 'ds-format', 'data-field': 'format' }, ['auto', 'csv', 'ndjson', 'parquet'].map((f) => h('option', { value: f }, f)));
  const scheduleIn = h('input', { id: 'ds-schedule', 'data-field': 'schedule', value: '@auto', list: 'schedules', 'aria-describedby': 'ds-schedule-help' });
  const modeIn = h('select', { id: 'ds-mode', 'data-field': 'mode' }, h('option', { value: 'tracked' }, 'tracked (every new object)'), h('option', { value: 'ordered' }, 'ordered (after the last key)'));
  const previewBtn = h('button', { type: 'button', id: 'preview', onclick: () => runPreview() }, 'Preview files and columns');
  const previewMsg = h('p', { class: 'help', id: 'preview-msg', 'aria-live': 'polite' });
  const previewEl = h('div', { id: 'preview-result' });
  const summary = h('div', { class: 'banner error', role: 'alert', tabindex: -1, hidden: true });
  const createBtn = h('button', { type: 'submit', class: 'primary', disabled: !!session.readOnlyReason, title: session.readOnlyReason ? `Read-only token: ${session.readOnlyReason}` : null }, 'Create data source');

  let preview = null; // { files, total, columns, suggestedTimeColumn }
  let rows = []; // column editor rows: { original, keep, nameIn, typeIn }
  const timeIn = h('select', { id: 'ds-time', onchange: () => engineOptions() });
  const sortIn = h('select', { id: 'ds-sort', 'data-field': 'engine.sortingKey' });
  const partIn = h('select', { id: 'ds-partition', 'data-field': 'engine.partitionKey' });
  const ttlIn = h('input', { id: 'ds-ttl', type: 'number', min: 1, step: 1, inputmode: 'numeric', 'data-field': 'engine.ttl', placeholder: 'keep forever', 'aria-describedby': 'ds-ttl-help' });
  const engineEl = h('fieldset', { class: 'engine', hidden: true },
    h('legend', {}, 'Table keys'),
    h('div', { class: 'row' },
      field('ds-time', 'Time column', timeIn, null),
      field('ds-sort', 'Sorting key (ORDER BY)', sortIn, null),
      field('ds-partition', 'Partition key', partIn, null),
      field('ds-ttl', 'TTL in days', ttlIn, 'Rows older than this (by the time column) are deleted. Empty: kept forever.')));

  const form = h('form', { class: 'card create', 'aria-labelledby': 'create-title', novalidate: true, onsubmit: (e) => { e.preventDefault(); void submit(); } },
    h('h1', { id: 'create-title' }, 'New data source'),
    summary,
    h('div', { class: 'row' },
      field('ds-connection', 'Connection', connIn, null),
      field('ds-name', 'Name', nameIn, 'Lower case letters, digits and _; also the table name.')),
    field('ds-uri', 'Bucket URI', uriIn, 'Globs: * ** ? {a,b}. A trailing / means every object under the prefix.'),
    h('div', { class: 'row' },
      field('ds-format', 'Format', formatIn, null),
      field('ds-schedule', 'Schedule', scheduleIn, '@auto (every minute), @on-demand, @every 30s, or a 5-field cron (UTC).'),
      field('ds-mode', 'Mode', modeIn, null)),
    h('datalist', { id: 'schedules' }, ['@auto', '@on-demand', '@every 30s', '@every 5m', '0 * * * *'].map((v) => h('option', { value: v }))),
    h('datalist', { id: 'types' }, TYPES.map((v) => h('option', { value: v }))),
    h('div', { class: 'preview-bar' }, previewBtn, previewMsg),
    previewEl, engineEl,
    h('div', { class: 'form-actions' }, createBtn, h('a', { href: '#/', class: 'button' }, 'Cancel')));
  fill(main, form);

  api('GET', '/v1/connections').then(({ items }) => {
    fill(connIn, items.length ? items.map((c) => h('option', { value: c.name }, `${c.name} (${c.kind}${c.endpoint ? `, ${c.endpoint}` : ''})`)) : h('option', { value: '' }, 'No connection is configured'));
  }, (err) => fill(connIn, h('option', { value: '' }, `Could not list connections: ${err.detail}`)));

  function keptRows() {
    return rows.filter((r) => r.keep.checked);
  }

  function engineOptions() {
    const kept = keptRows().map((r) => ({ name: r.nameIn.value.trim(), type: r.typeIn.value.trim() })).filter((c) => c.name);
    const times = kept.filter((c) => isTimeType(c.type)).map((c) => c.name);
    const prevTime = timeIn.value || preview?.suggestedTimeColumn;
    fill(timeIn, h('option', { value: '' }, '(none)'), times.map((t) => h('option', { value: t, selected: t === prevTime }, t)));
    const t = timeIn.value;
    const prevSort = sortIn.value;
    fill(sortIn, h('option', { value: '' }, '(none: tuple())'), kept.map((c) => h('option', { value: quoteCol(c.name), selected: prevSort ? prevSort === quoteCol(c.name) : c.name === t }, c.name)));
    const prevPart = partIn.value;
    fill(partIn, h('option', { value: '' }, '(none)'),
      t ? ['toYYYYMM', 'toYYYYMMDD', 'toYear'].map((fn) => h('option', { value: `${fn}(${quoteCol(t)})`, selected: prevPart ? prevPart === `${fn}(${quoteCol(t)})` : fn === 'toYYYYMM' }, `${fn}(${t})`)) : null);
    ttlIn.disabled = !t;
  }

  async function runPreview() {
    clearErrors();
    fill(previewMsg, 'Listing the bucket and inferring columns…');
    previewBtn.disabled = true;
    try {
      preview = await api('POST', '/v1/preview', { connection: connIn.value, bucketUri: uriIn.value.trim(), format: formatIn.value });
      fill(previewMsg, `${fmtInt(preview.total)}${preview.complete ? '' : '+'} file(s) match.`);
      renderPreview();
    } catch (err) {
      if (err.status === 401) return;
      preview = null;
      renderPreview();
      if (err.status === 403) fill(previewMsg, h('span', { class: 'error-text' }, `Preview needs more access: ${err.detail}. You can still create the data source; its columns are inferred from the first file.`));
      else if (err.errors.length) {
        fill(previewMsg, h('span', { class: 'error-text' }, 'Fix the fields marked below.'));
        showErrors(err.errors, { summary: false });
      } else fill(previewMsg, h('span', { class: 'error-text' }, `Preview failed: ${err.detail}`));
    } finally {
      previewBtn.disabled = false;
    }
  }

  function renderPreview() {
    rows = [];
    if (!preview) {
      fill(previewEl);
      engineEl.hidden = true;
      return;
    }
    const fileList = h('div', { class: 'matched' },
      h('h2', {}, 'Matched files'),
      preview.files.length
        ? h('ul', { class: 'file-list' }, preview.files.map((f) => h('li', {}, h('code', {}, f.key), h('span', { class: 'muted' }, ` ${fmtBytes(f.size)}`))))
        : h('p', { class: 'muted' }, 'No object matches this URI yet. The data source will import files as they arrive; declare columns or let the first file decide them.'));
    if (!preview.columns) {
      fill(previewEl, fileList);
      engineEl.hidden = true;
      return;
    }
    rows = preview.columns.map((c, i) => ({
      original: c,
      keep: h('input', { type: 'checkbox', checked: true, id: `col-keep-${i}`, 'aria-label': `Keep column ${c.name}`, onchange: () => engineOptions() }),
      nameIn: h('input', { value: c.name, 'aria-label': `Name of column ${c.name}`, onchange: () => engineOptions() }),
      typeIn: h('input', { value: c.type, list: 'types', 'aria-label': `Type of column ${c.name}`, onchange: () => engineOptions() }),
    }));
    fill(previewEl, fileList,
      h('div', { class: 'columns' },
        h('h2', {}, 'Columns'),
        h('p', { class: 'help' }, `Inferred from `, h('code', {}, preview.inferredFrom), '. Rename, retype or drop columns before creating.'),
        h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Inferred columns', tabindex: 0 },
          h('table', { class: 'columns-table' },
            h('thead', {}, h('tr', {}, ['Keep', 'Name', 'Type', 'Read from'].map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', {}, rows.map((r) => h('tr', { 'data-column': r.original.name },
              h('td', {}, r.keep), h('td', {}, r.nameIn), h('td', {}, r.typeIn),
              h('td', { class: 'muted' }, r.original.path ?? r.original.name))))))));
    engineEl.hidden = false;
    timeIn.value = '';
    engineOptions();
  }

  function specBody() {
    const body = { name: nameIn.value.trim(), connection: connIn.value, bucketUri: uriIn.value.trim(), format: formatIn.value, schedule: scheduleIn.value.trim(), mode: modeIn.value };
    const kept = keptRows();
    if (preview?.columns) {
      body.columns = kept.map((r, i) => {
        const { name: origName, type: _t, ...rest } = r.original;
        const name = r.nameIn.value.trim();
        r.nameIn.dataset.field = `columns.${i}.name`;
        r.typeIn.dataset.field = `columns.${i}.type`;
        // CSV and Parquet map columns by name: a renamed column keeps reading its source column.
        return { ...rest, name, type: r.typeIn.value.trim(), ...(name !== origName && !rest.path ? { source: origName } : {}) };
      });
      if (body.columns.length === 0) delete body.columns;
      const engine = {};
      if (sortIn.value) engine.sortingKey = sortIn.value;
      if (partIn.value) engine.partitionKey = partIn.value;
      if (ttlIn.value && timeIn.value) engine.ttl = `${quoteCol(timeIn.value)} + INTERVAL ${Number(ttlIn.value)} DAY`;
      if (Object.keys(engine).length) body.engine = engine;
    }
    return body;
  }

  async function submit() {
    clearErrors();
    const body = specBody();
    createBtn.disabled = true;
    try {
      await api('POST', '/v1/datasources', body);
      toast(`Data source ${body.name} created`);
      location.hash = `#/datasources/${body.name}`;
    } catch (err) {
      if (err.status === 401) return;
      showErrors(err.errors.length ? err.errors : [{ field: '(body)', message: err.detail }], { summary: true, detail: err.detail });
    } finally {
      createBtn.disabled = !!session.readOnlyReason;
    }
  }

  function clearErrors() {
    for (const el of form.querySelectorAll('.field-error')) el.remove();
    for (const el of form.querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
      const ids = (el.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id && !id.startsWith('err-'));
      if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
      else el.removeAttribute('aria-describedby');
    }
    summary.hidden = true;
  }

  /** Put each error next to the control whose data-field it names; the rest go to the summary. */
  function showErrors(errors, { summary: withSummary, detail } = {}) {
    const unplaced = [];
    let first = null;
    errors.forEach((e, i) => {
      const target = findField(e.field);
      if (!target) {
        unplaced.push(e);
        return;
      }
      const id = `err-${i}`;
      const msg = h('p', { class: 'field-error', id, 'data-error-for': e.field }, e.message);
      (target.closest('td') ?? target.closest('.field') ?? target.parentElement).append(msg);
      target.setAttribute('aria-invalid', 'true');
      target.setAttribute('aria-describedby', `${target.getAttribute('aria-describedby') ?? ''} ${id}`.trim());
      first ??= target;
    });
    if (withSummary || unplaced.length) {
      const placed = errors.length - unplaced.length;
      fill(summary, h('strong', {}, unplaced.length ? (detail ?? 'The request was rejected.') : `The API rejected ${placed === 1 ? 'one field' : `${placed} fields`}: see the message${placed === 1 ? '' : 's'} next to ${placed === 1 ? 'it' : 'them'}.`),
        unplaced.length ? h('ul', {}, unplaced.map((e) => h('li', {}, `${e.field}: ${e.message}`))) : null);
      summary.hidden = false;
    }
    (first ?? summary).focus();
  }

  function findField(field) {
    let f = field;
    while (f) {
      const el = form.querySelector(`[data-field="${CSS.escape(f)}"]`);
      if (el) return el;
      f = f.includes('.') ? f.slice(0, f.lastIndexOf('.')) : '';
    }
    return null;
  }

  return { stop() {} };
}

const quoteCol = (name) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``);

// ---------------------------------------------------------------------------
// Routing

let view = null;
function route() {
  if (loginShown) return;
  view?.stop();
  const hash = location.hash || '#/';
  const m = /^#\/datasources\/([a-z][a-z0-9_]{0,62})$/.exec(hash);
  view = hash === '#/new' ? createView() : m ? detailView(m[1]) : listView();
  const current = hash === '#/new' ? 'new' : 'list';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});

if (await probeRole()) route();
