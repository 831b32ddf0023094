// sTask admin UI: one plain ES module, no framework, no build step.
//
// Rules kept throughout:
// - Text from the server only ever reaches the page through textContent / text nodes (el()
//   never touches innerHTML), so a task message like "<img onerror=...>" shows as literal text.
// - No inline styles in markup (the page runs under a strict CSP); widths are set through the
//   CSSOM (element.style.width), which the CSP allows.
// - Live updates come from one EventSource; list refreshes they trigger are throttled per area.

// Uncaught errors and unhandled rejections, kept for diagnostics: the browser tests read them
// where the WebDriver has no console log (Firefox).
window.__staskErrors = [];
window.addEventListener('error', (e) => window.__staskErrors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => window.__staskErrors.push(String(e.reason)));

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const state = {
  csrf: null, // CSRF token of the session; null = logged out
  tab: 'dashboard',
  page: 1,
  perPage: 25,
  pages: 1,
  filters: {},
  detailId: null, // task shown in #task-detail
  detailLog: [], // its log lines as shown: the detail's, then the task_log events since
  detailLogTask: null, // the task detailLog belongs to
  detailTask: null,
  workers: [], // latest GET /stask/workers answer, for the filter list and the count
  timeline: null, // latest timeline answer, redrawn on resize
  batchId: null, // batch shown in #batch-detail
};

const TAB_NAMES = ['dashboard', 'tasks', 'workers', 'batches', 'schedules', 'performance', 'audit'];
const ACTIVE_STATUSES = ['pending', 'preparing', 'running'];
const FINISHED_STATUSES = ['completed', 'failed', 'cancelled'];
const TIMELINE_BUCKETS = { 1: 12, 6: 24, 24: 24, 168: 28 };

/* ------------------------------------------------------------------ DOM helpers */

/** Appends children: nodes as they are, anything else as a text node (never parsed as HTML). */
function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'value') node.value = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Creates an HTML element: el('td', {class: 'x'}, 'text', childNode). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  return append(node, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element (charts are built with createElementNS, never from markup). */
function svgEl(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  return append(node, children);
}

function setText(target, text) {
  const node = typeof target === 'string' ? $(target) : target;
  if (node) node.textContent = text === null || text === undefined ? '' : String(text);
}

/** A class-safe token from a server value (status names, severities...). */
function token(value) {
  return String(value ?? '').toLowerCase().replace(/[^a-z0-9_-]/g, '') || 'unknown';
}

let uidCounter = 0;
const uid = (prefix = 'u') => `${prefix}${++uidCounter}`;

/** Shows a message in a result element; kind 'error' or 'ok' colours it. */
function showResult(target, message, kind = 'ok') {
  const node = typeof target === 'string' ? $(target) : target;
  if (!node) return;
  node.classList.remove('is-error', 'is-ok');
  node.classList.add(kind === 'error' ? 'is-error' : 'is-ok');
  node.replaceChildren(document.createTextNode(message));
}

/** Disables a button while an async action runs. */
async function withBusy(button, action) {
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await action();
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

/* ------------------------------------------------------------------ formatting */

const pretty = (value) => JSON.stringify(value ?? null, null, 2);

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

function fmtNumber(value, digits = 2) {
  if (value === null || value === undefined) return 'n/a';
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

function fmtPercent(value) {
  return value === null || value === undefined ? 'n/a' : `${Number(value).toFixed(1)} %`;
}

/** Seconds (possibly fractional) for people: 850 ms, 4.20 s, 3m 5s, 2h 10m. */
function fmtSeconds(value) {
  if (value === null || value === undefined) return 'n/a';
  const s = Number(value);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

const fmtMs = (ms) => (ms === null || ms === undefined ? '—' : fmtSeconds(ms / 1000));

function fmtBytes(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A datetime-local value (local time) as RFC 3339 UTC, which the API parses unambiguously. */
function toServerTime(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/* ------------------------------------------------------------------ API */

class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * Calls the API. A string body is sent as it is (already JSON text); anything else is
 * serialised. State-changing requests carry the session's CSRF token. Errors are thrown as
 * ApiError with the server's `message`.
 */
async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (!['GET', 'HEAD'].includes(method) && state.csrf) headers['X-CSRF-TOKEN'] = state.csrf;
  if (body instanceof FormData) {
    init.body = body; // multipart: the browser writes the Content-Type with its boundary
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(`cannot reach the sTask host (${e.message})`, 0, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok || (data && data.success === false)) {
    const message =
      data && typeof data.message === 'string'
        ? data.message
        : `HTTP ${response.status} ${response.statusText}`.trim();
    if (response.status === 401 && path !== '/stask/login') onSessionLost(message);
    throw new ApiError(message, response.status, data);
  }
  return data ?? {};
}

const enc = encodeURIComponent;

/* ------------------------------------------------------------------ notices */

let noticeTimer = null;

/** A short-lived message for errors of background work (refreshes, events). */
function notify(message, kind = 'error') {
  const node = $('#notice');
  node.hidden = false;
  node.className = `notice notice-${kind}`;
  node.textContent = message;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    node.hidden = true;
  }, 8000);
}

function reportError(error) {
  // A lost session is handled by onSessionLost; do not also shout about it.
  if (error instanceof ApiError && error.status === 401) return;
  notify(error && error.message ? error.message : String(error));
}

/* ------------------------------------------------------------------ shared task widgets */

/** span.status badge; carries both `status-<name>` and `<name>` classes. */
function statusBadge(status, node = el('span')) {
  const name = token(status);
  node.className = `status status-${name} ${name}`;
  node.textContent = status ?? '';
  return node;
}

/** .bar[role=progressbar] with an inner fill sized from JS. */
function progressBar(value, label = 'Progress') {
  const bar = el('div', {
    class: 'bar',
    role: 'progressbar',
    'aria-valuemin': 0,
    'aria-valuemax': 100,
    'aria-label': label,
  }, el('div', { class: 'bar-fill' }));
  setBar(bar, value);
  return bar;
}

function setBar(bar, value) {
  if (!bar) return;
  const n = Math.max(0, Math.min(100, Math.round(Number(value) || 0)));
  bar.setAttribute('aria-valuenow', String(n));
  bar.setAttribute('aria-valuetext', `${n}%`);
  const fill = $('.bar-fill', bar);
  if (fill) fill.style.width = `${n}%`;
  const label = bar.nextElementSibling;
  if (label && label.classList.contains('bar-text')) label.textContent = `${n}%`;
}

/** Why a pending task waits for its worker's limit, as a short label (null when no limit holds it). */
function limitLabel(task) {
  if (task.status !== 'pending') return null;
  if (task.waiting_for === 'concurrency_limit') return 'concurrency limit';
  if (task.waiting_for === 'rate_limit') return 'rate limit';
  return null;
}

/** A flag for a task a limit holds; its title is the server's message (text only). */
function limitFlag(task) {
  const label = limitLabel(task);
  return label ? el('span', { class: 'paused-flag limit-flag', title: task.message || label }, label) : null;
}

/** A worker's limits and what runs under them, as one line (null without limits). */
function limitsText(limits) {
  if (!limits) return null;
  const parts = [];
  if (limits.concurrency) parts.push(`concurrency ${limits.concurrency}`);
  for (const [action, cap] of Object.entries(limits.action_concurrency || {})) {
    parts.push(`${action}: ${cap}`);
  }
  if (limits.rate_limit) parts.push(`rate ${limits.rate_limit}`);
  if (limits.running !== null && limits.running !== undefined) parts.push(`running now ${limits.running}`);
  return parts.join(' · ');
}

/** One table row. `columns` picks cells: id, worker, status, priority, progress, eta, created, message. */
function taskRow(task, columns) {
  const tr = el('tr', { class: 'task-row', 'data-task-id': task.id });
  if (task.id === state.detailId) tr.classList.add('selected');
  const cells = {
    id: () => el('td', { class: 'c-id' },
      el('button', { type: 'button', class: 'link-btn open-row', 'aria-label': `Open task ${task.id}` }, `#${task.id}`)),
    worker: () => el('td', { class: 'c-worker' }, `${task.identifier}:${task.action}`),
    status: () => el('td', { class: 'c-status' }, statusBadge(task.status),
      task.paused ? el('span', { class: 'paused-flag', title: task.message || 'Its worker is paused' }, 'paused') : null,
      limitFlag(task)),
    priority: () => el('td', { class: 'c-priority col-optional' }, task.priority),
    progress: () => el('td', { class: 'c-progress' },
      el('span', { class: 'progress' }, progressBar(task.progress, `Progress of task ${task.id}`),
        el('span', { class: 'bar-text' }, `${task.progress}%`))),
    eta: () => el('td', { class: 'c-eta col-optional' }, task.eta || '—'),
    created: () => el('td', { class: 'c-created col-optional' }, fmtTime(task.created_at)),
    message: () => el('td', { class: 'c-message' }, task.message || ''),
  };
  for (const c of columns) tr.append(cells[c]());
  return tr;
}

/** Re-renders a tbody, keeping keyboard focus on the same task's button if it had it. */
function renderTaskRows(tbody, tasks, columns, emptyText) {
  const focused = document.activeElement?.closest?.('tr[data-task-id]');
  const focusedId = focused && tbody.contains(focused) ? focused.dataset.taskId : null;
  if (!tasks.length) {
    tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: columns.length }, emptyText)));
    return;
  }
  tbody.replaceChildren(...tasks.map((t) => taskRow(t, columns)));
  if (focusedId) {
    const row = $$('tr[data-task-id]', tbody).find((r) => r.dataset.taskId === focusedId);
    row?.querySelector('button')?.focus();
  }
}

/** Applies a live patch ({status, progress, message, eta}) to every row showing the task. */
function patchTaskRows(id, patch) {
  for (const tr of $$('tr[data-task-id]').filter((r) => r.dataset.taskId === String(id))) {
    if (patch.status !== undefined) {
      const badge = $('.c-status .status', tr);
      if (badge) statusBadge(patch.status, badge);
    }
    if (patch.progress !== undefined) setBar($('.c-progress .bar', tr), patch.progress);
    if (patch.eta !== undefined) setText($('.c-eta', tr), patch.eta || '—');
    if (patch.message !== undefined) setText($('.c-message', tr), patch.message);
  }
}

/* ------------------------------------------------------------------ dashboard */

async function loadDashboard() {
  await Promise.all([
    api('/stask/stats').then(renderStats),
    loadWorkerSummary(),
    api('/stask/tasks?per_page=10').then((d) =>
      renderTaskRows($('#recent-tasks tbody'), d.tasks, ['id', 'worker', 'status', 'progress', 'eta', 'message'], 'No tasks yet')),
    api('/stask/tasks?status=failed&per_page=5').then((d) => renderRecentErrors(d.tasks)),
  ].map((p) => p.catch(reportError)));
}

function renderStats(stats) {
  for (const key of ['pending', 'running', 'completed', 'failed', 'cancelled', 'total']) {
    setText(`[data-stat="${key}"]`, stats[key] ?? 0);
  }
}

/** GET /stask/workers for the active-workers card and the worker filter suggestions. */
async function loadWorkerSummary() {
  const data = await api('/stask/workers');
  applyWorkerSummary(data);
  return data;
}

function applyWorkerSummary(data) {
  state.workers = data.workers || [];
  const active = state.workers.filter((w) => w.state === 'loaded' && w.active).length;
  setText('[data-stat="workers"]', active);
  $('#worker-options').replaceChildren(...state.workers.map((w) => el('option', { value: w.identifier })));
}

function renderRecentErrors(tasks) {
  const list = $('#recent-errors');
  if (!tasks.length) {
    list.replaceChildren(el('li', { class: 'empty' }, 'No failed tasks'));
    return;
  }
  list.replaceChildren(...tasks.map((t) => el('li', { class: 'error-item' },
    el('a', { class: 'open-task', href: `#task/${t.id}`, 'data-task-id': t.id }, `#${t.id}`),
    ' ', el('span', { class: 'muted' }, `${t.identifier}:${t.action}`),
    el('div', { class: 'error-text' }, t.last_error || t.message || 'failed'),
    el('div', { class: 'muted small' }, fmtTime(t.finished_at || t.updated_at)))));
}

async function runClean(event) {
  event.preventDefault();
  const days = Number($('#clean-days').value);
  if (!Number.isInteger(days) || days < 0) {
    showResult('#clean-result', 'Enter a whole number of days (0 or more).', 'error');
    return;
  }
  await withBusy($('#clean-run'), async () => {
    try {
      const r = await api('/stask/tasks/clean', { method: 'POST', body: { days } });
      showResult('#clean-result', r.message || `Deleted ${r.deleted} tasks`);
      invalidate('dashboard');
    } catch (e) {
      showResult('#clean-result', e.message, 'error');
    }
  });
}

/* ------------------------------------------------------------------ tasks list */

const TASK_COLUMNS = ['id', 'worker', 'status', 'priority', 'progress', 'created', 'message'];

function readFilters() {
  return {
    status: $('#f-status').value,
    identifier: $('#f-worker').value.trim(),
    action: $('#f-action').value.trim(),
    priority: $('#f-priority').value,
    from: toServerTime($('#f-from').value),
    to: toServerTime($('#f-to').value),
    q: $('#f-q').value.trim(),
  };
}

async function loadTasks() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value);
  params.set('page', String(state.page));
  params.set('per_page', String(state.perPage));
  const data = await api(`/stask/tasks?${params}`);
  const pages = Math.max(1, Math.ceil(data.total / state.perPage));
  // Tasks were deleted under us: jump to the last page that still exists.
  if (state.page > pages && data.total > 0) {
    state.page = pages;
    return loadTasks();
  }
  state.pages = pages;
  renderTaskRows($('#tasks-table tbody'), data.tasks, TASK_COLUMNS, 'No tasks match these filters');
  setText('#page-info', `page ${state.page} of ${pages}, ${data.total} task${data.total === 1 ? '' : 's'}`);
  $('#page-prev').disabled = state.page <= 1;
  $('#page-next').disabled = state.page >= pages;
}

function applyFilters(event) {
  event?.preventDefault();
  state.filters = readFilters();
  state.page = 1;
  refreshNow('tasks');
}

function resetFilters() {
  $('#tasks-filter').reset();
  applyFilters();
}

function changePage(delta) {
  const next = state.page + delta;
  if (next < 1 || next > state.pages) return;
  state.page = next;
  refreshNow('tasks');
}

/* ------------------------------------------------------------------ task detail */

let detailSeq = 0; // answers of older requests are dropped when a newer one was sent
let detailTimer = null;
let detailLast = 0;

/** Shows a task in the Tasks tab's detail panel. */
async function openTask(id, { focus = true } = {}) {
  const taskId = Number(id);
  if (!Number.isInteger(taskId) || taskId < 1) return;
  if (state.tab !== 'tasks') showTab('tasks');
  state.detailId = taskId;
  state.detailTask = null;
  state.detailLog = [];
  state.detailLogTask = taskId;
  history.replaceState(null, '', `#task/${taskId}`);
  for (const tr of $$('tr.selected')) tr.classList.remove('selected');
  for (const tr of $$('#tasks-table tr[data-task-id]')) {
    tr.classList.toggle('selected', tr.dataset.taskId === String(taskId));
  }
  const panel = $('#task-detail');
  panel.hidden = false;
  setText('#detail-title', `Task #${taskId}`);
  setText('#detail-result-msg', '');
  await loadDetail();
  if (focus) panel.focus();
}

function closeDetail() {
  const id = state.detailId;
  state.detailId = null;
  state.detailTask = null;
  clearTimeout(detailTimer);
  detailTimer = null;
  $('#task-detail').hidden = true;
  for (const tr of $$('tr.selected')) tr.classList.remove('selected');
  history.replaceState(null, '', '#tasks');
  const row = $$('#tasks-table tr[data-task-id]').find((r) => r.dataset.taskId === String(id));
  row?.querySelector('button')?.focus();
}

async function loadDetail() {
  const id = state.detailId;
  if (!id) return;
  const seq = ++detailSeq;
  detailLast = Date.now();
  try {
    const data = await api(`/stask/tasks/${id}`);
    if (seq !== detailSeq || id !== state.detailId) return;
    state.detailTask = data.task;
    renderDetail(data.task, data.log || []);
    renderFamily(data.task, data.children);
  } catch (e) {
    if (seq !== detailSeq) return;
    showResult('#detail-result-msg', e.message, 'error');
    if (e.status === 404) {
      state.detailTask = null;
      renderDetailButtons(null);
    }
  }
}

/** Re-fetches the open task at most once per `gap` ms (`force` replaces a pending wait). */
function scheduleDetailReload(gap, force = false) {
  if (!state.detailId) return;
  if (detailTimer && !force) return;
  clearTimeout(detailTimer);
  const wait = Math.max(0, detailLast + gap - Date.now());
  detailTimer = setTimeout(() => {
    detailTimer = null;
    loadDetail();
  }, wait);
}

/** The parts of the detail that live events change. */
function renderDetailLive(task) {
  statusBadge(task.status, $('#detail-status'));
  setBar($('#detail-progress'), task.progress);
  setText('#detail-progress-text', `${Number(task.progress) || 0}%`);
  setText('#detail-message', task.message || '—');
  setText('#detail-eta', task.eta || '—');
  setText('#detail-note', task.cancel_requested && ACTIVE_STATUSES.includes(task.status)
    ? 'cancel requested'
    : (limitLabel(task) ? `waiting: ${limitLabel(task)}` : ''));
  renderDetailButtons(task);
}

function renderDetailButtons(task) {
  const status = task?.status;
  $('#btn-cancel').hidden = !ACTIVE_STATUSES.includes(status);
  $('#btn-retry').hidden = !['failed', 'cancelled'].includes(status);
  $('#btn-delete').hidden = !FINISHED_STATUSES.includes(status);
  const link = $('#btn-download');
  const downloadable = Boolean(task?.download_url) && status === 'completed';
  link.hidden = !downloadable;
  link.setAttribute('href', downloadable ? `/stask/tasks/${task.id}/download` : '#');
}

function renderDetail(task, log) {
  setText('#detail-title', `Task #${task.id}`);
  renderDetailLive(task);
  const error = $('#detail-error');
  error.hidden = !task.last_error;
  setText(error, task.last_error ? `Last error: ${task.last_error}` : '');
  setText('#detail-worker', `${task.identifier}:${task.action}`);
  setText('#detail-priority', task.priority);
  setText('#detail-unique-key', task.unique_key || '—');
  renderDependencies(task.dependencies);
  setText('#detail-attempts', `${task.attempts} of ${task.max_attempts}`);
  setText('#detail-items', task.total !== null && task.total !== undefined ? `${task.processed ?? 0} / ${task.total}` : '—');
  setText('#detail-created', fmtTime(task.created_at));
  setText('#detail-run-at', fmtTime(task.run_at));
  setText('#detail-started', fmtTime(task.started_at));
  setText('#detail-finished', fmtTime(task.finished_at));
  setText('#detail-duration', fmtMs(task.duration_ms));
  setText('#detail-wait', fmtMs(task.wait_ms));
  setText('#detail-cpu', fmtMs(task.cpu_ms));
  setText('#detail-memory', task.memory_bytes == null ? 'not measured' : fmtBytes(task.memory_bytes));
  setText('#detail-version', task.worker_version || '—');
  setText('#detail-file', task.result_file || '—');
  setText('#detail-meta', pretty(task.meta));
  setText('#detail-result', formatResult(task.result));
  renderLog(log, task.id);
}

/** A link that opens task `id` in the detail panel (the click handler knows `a.open-task`). */
function taskLink(id) {
  return el('a', { class: 'open-task', href: `#task/${id}`, 'data-task-id': id }, `#${id}`);
}

/** The task's parent and its follow-ups (`children`: total and the first ids), as links. */
function renderFamily(task, children) {
  const parent = $('#detail-parent');
  parent.replaceChildren(task.parent_id ? taskLink(task.parent_id) : '—');
  $('#detail-batch').replaceChildren(task.batch_id ? batchLink(task.batch_id) : '—');
  const list = $('#detail-children');
  const ids = children?.ids || [];
  const total = Number(children?.total) || 0;
  if (total === 0) {
    list.replaceChildren('—');
    return;
  }
  const links = ids.flatMap((id, i) => (i === 0 ? [taskLink(id)] : [', ', taskLink(id)]));
  const more = total - ids.length;
  list.replaceChildren(...links, more > 0 ? ` and ${more} more` : '');
}

/** The task's dependency chain: the tasks it depends on and the tasks that depend on it, each
 * a link with its status; counts beyond the listed ones are said ("and 150 more"). */
function renderDependencies(deps) {
  const chain = (relation, count) => {
    const tasks = (deps?.tasks || []).filter((t) => t.relation === relation);
    if (!tasks.length) return [document.createTextNode('—')];
    const items = tasks.map((t) => el('span', { class: 'dependency' },
      el('a', { class: 'open-task', href: `#task/${t.id}`, 'data-task-id': t.id }, `#${t.id}`),
      ' ', statusBadge(t.status ?? 'deleted')));
    if (count > tasks.length) items.push(el('span', { class: 'muted' }, `and ${count - tasks.length} more`));
    return items;
  };
  $('#detail-depends-on').replaceChildren(...chain('parent', deps?.depends_on_count ?? 0));
  if (deps?.depends_on_count) {
    $('#detail-depends-on').append(el('span', { class: 'muted' }, ` (if one fails: ${deps.on_parent_failure})`));
  }
  $('#detail-dependants').replaceChildren(...chain('dependant', deps?.dependant_count ?? 0));
}

/** Pretty JSON when the result is JSON, the text itself otherwise. */
function formatResult(result) {
  if (result === null || result === undefined || result === '') return '—';
  try {
    return pretty(JSON.parse(result));
  } catch {
    return String(result);
  }
}

const LOG_LEVELS = ['info', 'warning', 'error'];

/** Most log lines the detail shows while it tails a task (the oldest go first). */
const MAX_SHOWN_LOG_LINES = 2000;

function logItem(l) {
  const level = LOG_LEVELS[l.level] || 'info';
  return el('li', { class: `log-${level}` },
    el('time', { class: 'log-time', datetime: new Date(l.at).toISOString() }, new Date(l.at).toLocaleTimeString()),
    ' ', l.attempt > 1 ? el('span', { class: 'log-attempt' }, `[attempt ${l.attempt}] `) : null,
    el('span', { class: 'log-line' }, l.line));
}

/**
 * What tells two log lines apart without an id: an event carries at most the line's first
 * 2,000 characters, so the key takes fewer.
 */
function logKey(l) {
  return `${l.attempt}|${l.at}|${l.level}|${String(l.line).slice(0, 200)}`;
}

/**
 * Shows the log the detail fetched. A task_log event that came while the fetch was on its way
 * may be newer than what the fetch read: it stays, after the fetched lines, unless the fetch had
 * it too (events are sent once a line is stored, so either order happens).
 */
function renderLog(lines, taskId) {
  const list = $('#detail-log');
  const fetchedKeys = new Map();
  for (const l of lines) fetchedKeys.set(logKey(l), (fetchedKeys.get(logKey(l)) || 0) + 1);
  const evented = new Map(); // fetched lines whose event came already
  const carried = [];
  for (const l of state.detailLogTask === taskId ? state.detailLog : []) {
    if (l.fetched) continue;
    const key = logKey(l);
    if (takeKey(fetchedKeys, key)) evented.set(key, (evented.get(key) || 0) + 1);
    else carried.push(l);
  }
  // The other fetched lines await their event, which is then not shown twice.
  const fetched = lines.map((l) => ({ ...l, fetched: true, awaited: !takeKey(evented, logKey(l)) }));
  state.detailLog = fetched.concat(carried).slice(-MAX_SHOWN_LOG_LINES);
  state.detailLogTask = taskId;
  // Keep following the end of the log only if the reader was already there.
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  if (!state.detailLog.length) {
    list.replaceChildren(el('li', { class: 'empty' }, 'No log lines'));
    return;
  }
  list.replaceChildren(...state.detailLog.map(logItem));
  if (atEnd) list.scrollTop = list.scrollHeight;
}

/** Takes one `key` from a count map; false if none was left. */
function takeKey(counts, key) {
  const n = counts.get(key) || 0;
  if (!n) return false;
  counts.set(key, n - 1);
  return true;
}

/** A line the shown task just logged (a task_log event), appended to its tail. */
function appendLogLine(line) {
  const list = $('#detail-log');
  if (state.detailLogTask !== line.id) {
    state.detailLog = [];
    state.detailLogTask = line.id;
  }
  const key = logKey(line);
  const known = state.detailLog.find((l) => l.awaited && logKey(l) === key);
  if (known) {
    known.awaited = false; // the fetch had it already
    return;
  }
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  if (!state.detailLog.length) list.replaceChildren();
  state.detailLog.push({ ...line, fetched: false });
  list.append(logItem(line));
  while (state.detailLog.length > MAX_SHOWN_LOG_LINES) {
    state.detailLog.shift();
    list.firstElementChild?.remove();
  }
  if (atEnd) list.scrollTop = list.scrollHeight;
}

async function taskCommand(kind) {
  const id = state.detailId;
  if (!id) return;
  if (kind === 'delete' && !window.confirm(`Delete task #${id} and its files?`)) return;
  const button = $(`#btn-${kind}`);
  await withBusy(button, async () => {
    try {
      const r = kind === 'delete'
        ? await api(`/stask/tasks/${id}`, { method: 'DELETE' })
        : await api(`/stask/tasks/${id}/${kind}`, { method: 'POST' });
      invalidate('tasks', 'dashboard');
      if (kind === 'delete') {
        closeDetail();
        notify(r.message || `Task #${id} deleted`, 'ok');
        return;
      }
      await loadDetail();
      showResult('#detail-result-msg', r.message || 'Done');
    } catch (e) {
      showResult('#detail-result-msg', e.message, 'error');
    }
  });
}

/* ------------------------------------------------------------------ workers */

async function loadWorkers() {
  const data = await api('/stask/workers');
  applyWorkerSummary(data);
  renderWorkers(data);
}

/**
 * Remembers what the reader typed or is focused on inside the worker cards, so that a refresh
 * triggered by a live event does not throw away an edited task body or settings.
 */
function saveWorkerEdits(list) {
  const saved = { values: new Map(), results: new Map(), files: new Map(), focus: null };
  for (const card of $$('.worker', list)) {
    for (const node of $$('[data-key]', card)) {
      const key = `${card.dataset.identifier}\n${node.dataset.key}`;
      if (node.type === 'file') {
        if (node.files?.length) saved.files.set(key, node);
        continue;
      }
      if (node.dataset.dirty === '1') saved.values.set(key, node.value);
      if (node.classList.contains('result') && node.childNodes.length) {
        saved.results.set(key, { nodes: Array.from(node.childNodes, (n) => n.cloneNode(true)), cls: node.className });
      }
      if (node === document.activeElement) {
        saved.focus = { key, start: node.selectionStart, end: node.selectionEnd };
      }
    }
  }
  return saved;
}

function restoreWorkerEdits(list, saved) {
  for (const card of $$('.worker', list)) {
    for (const node of $$('[data-key]', card)) {
      const key = `${card.dataset.identifier}\n${node.dataset.key}`;
      if (saved.files.has(key)) {
        node.replaceWith(saved.files.get(key));
        continue;
      }
      if (saved.values.has(key)) {
        node.value = saved.values.get(key);
        node.dataset.dirty = '1';
      }
      const result = saved.results.get(key);
      if (result) {
        node.className = result.cls;
        node.replaceChildren(...result.nodes);
      }
      if (saved.focus && saved.focus.key === key) {
        node.focus();
        if (typeof saved.focus.start === 'number' && 'setSelectionRange' in node) {
          try {
            node.setSelectionRange(saved.focus.start, saved.focus.end);
          } catch {
            /* not a text control */
          }
        }
      }
    }
  }
}

function renderWorkers(data) {
  const list = $('#workers-list');
  const saved = saveWorkerEdits(list);
  const workers = data.workers || [];
  list.replaceChildren(...workers.map(workerCard));
  if (!workers.length) {
    list.append(el('p', { class: 'card empty' }, 'No workers yet: drop a plugin library into plugins.d/ and press Discover.'));
  }
  restoreWorkerEdits(list, saved);
  renderPluginErrors(data.plugin_files || []);
}

function renderPluginErrors(files) {
  const refused = files.filter((f) => f.state === 'error');
  const list = $('#plugin-errors');
  if (!refused.length) {
    list.replaceChildren(el('li', { class: 'empty' }, 'None'));
    return;
  }
  list.replaceChildren(...refused.map((f) => el('li', { class: 'plugin-error', 'data-file': f.file },
    el('code', { class: 'file' }, f.file), ': ',
    el('span', { class: 'error-text' }, f.error || 'refused'),
    f.error_detail ? el('details', {}, el('summary', {}, 'Details'), el('pre', { class: 'code' }, f.error_detail)) : null)));
}

function workerCard(w) {
  const id = uid('w');
  const stateName = token(w.state);
  const card = el('article', {
    class: `worker card state-${stateName}${w.active ? '' : ' inactive'}`,
    'aria-labelledby': `${id}-title`,
  });
  card.dataset.identifier = w.identifier;

  // append() (not Element.append) so that the null of an absent part adds nothing.
  append(card, [
    el('header', { class: 'worker-head' },
      el('h3', { id: `${id}-title`, class: 'worker-title' }, w.title || w.identifier),
      el('span', { class: `state ${stateName}` }, w.state),
      el('span', { class: `active-flag ${w.active ? 'is-active' : 'is-inactive'}` }, w.active ? 'active' : 'inactive'),
      w.paused ? el('span', { class: 'paused-flag', title: 'New tasks wait until the worker is resumed' }, 'paused') : null,
      el('button', { type: 'button', class: 'btn toggle-active needs-admin', 'data-key': 'toggle' }, w.active ? 'Deactivate' : 'Activate'),
      el('button', { type: 'button', class: 'btn toggle-paused needs-admin', 'data-key': 'toggle-paused' }, w.paused ? 'Resume' : 'Pause')),
    w.description ? el('p', { class: 'worker-desc' }, w.description) : null,
    el('dl', { class: 'kv worker-meta' },
      el('dt', {}, 'Identifier'), el('dd', {}, el('code', { class: 'identifier' }, w.identifier)),
      el('dt', {}, 'Scope'), el('dd', { class: 'scope' }, w.scope || '—'),
      el('dt', {}, 'Version'), el('dd', { class: 'version' }, w.version || '—'),
      el('dt', {}, 'Loaded'), el('dd', { class: 'loaded-at' }, fmtTime(w.loaded_at)),
      el('dt', {}, 'File'), el('dd', { class: 'file' }, w.file || '—'),
      el('dt', {}, 'Limits'), el('dd', { class: 'limits' }, limitsText(w.limits) || 'none')),
    w.load_error ? el('p', { class: 'load-error error' }, `Load error: ${w.load_error}`) : null,
  ]);

  const actions = Array.isArray(w.actions) ? w.actions : [];
  card.append(el('h4', {}, 'Actions'));
  if (!actions.length) card.append(el('p', { class: 'muted' }, 'No actions declared.'));
  actions.forEach((a, i) => card.append(actionForm(w, a, `${id}-a${i}`)));

  const settingsId = `${id}-settings`;
  card.append(
    el('h4', {}, 'Settings'),
    el('form', { class: 'settings-form needs-admin' },
      el('label', { for: settingsId }, 'Settings (JSON object)'),
      el('textarea', { id: settingsId, class: 'settings', rows: 5, spellcheck: 'false', 'data-key': 'settings', value: pretty(w.settings ?? {}) }),
      el('div', { class: 'row' },
        el('button', { type: 'submit', class: 'btn save-settings', 'data-key': 'save-settings' }, 'Save settings')),
      el('p', { class: 'settings-result result', 'aria-live': 'polite', 'data-key': 'settings-result' }),
      el('details', { class: 'defaults' }, el('summary', {}, 'Plugin defaults'), el('pre', { class: 'code' }, pretty(w.default_settings ?? {})))),
  );
  return card;
}

function actionForm(worker, action, id) {
  const name = String(action?.name ?? '');
  const form = el('form', { class: 'run-action needs-operate', 'data-action': name },
    el('div', { class: 'action-head' },
      el('strong', { class: 'action-name' }, name),
      action?.description ? el('span', { class: 'action-desc' }, ` — ${action.description}`) : null),
    el('label', { for: id }, `Task data for ${name} (JSON object)`),
    el('textarea', { id, class: 'run-data', rows: 3, spellcheck: 'false', 'data-key': `run-data\n${name}`, value: '{}' }),
    action?.schema ? el('details', { class: 'schema' }, el('summary', {}, 'Data schema'), el('pre', { class: 'code' }, pretty(action.schema))) : null,
    readsFile(action) ? el('label', { for: `${id}-file` }, 'File to upload (its stored path becomes the data\'s "file")') : null,
    readsFile(action) ? el('input', { id: `${id}-file`, type: 'file', class: 'run-file', 'data-key': `run-file\n${name}` }) : null,
    el('div', { class: 'row' },
      el('button', { type: 'submit', class: 'btn btn-primary run-submit', 'data-key': `run-submit\n${name}` }, `Run ${name}`)),
    el('p', { class: 'run-result result', 'aria-live': 'polite', 'data-key': `run-result\n${name}` }));
  return form;
}

/**
 * Whether an action takes a file (an import): its name says so or its description names a
 * `file`. Its form then offers an upload (POST /stask/uploads) whose path goes into `file`.
 */
function readsFile(action) {
  const name = String(action?.name ?? '');
  return name === 'import' || /\bfile\b/i.test(String(action?.description ?? ''));
}

/** Parses a textarea as a JSON object, or returns an error message. */
function parseObject(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: `Invalid JSON: ${e.message}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: 'The data must be a JSON object, e.g. {"key": "value"}' };
  }
  return { value };
}

async function runAction(form) {
  const identifier = form.closest('.worker').dataset.identifier;
  const action = form.dataset.action;
  const textarea = $('.run-data', form);
  const out = $('.run-result', form);
  const text = textarea.value.trim() || '{}';
  const parsed = parseObject(text);
  if (parsed.error) {
    showResult(out, parsed.error, 'error');
    return;
  }
  const fileInput = $('.run-file', form);
  const chosen = fileInput?.files?.[0];
  await withBusy($('.run-submit', form), async () => {
    try {
      let body = text;
      if (chosen) {
        const upload = new FormData();
        upload.append('file', chosen, chosen.name);
        const stored = await api('/stask/uploads', { method: 'POST', body: upload });
        body = JSON.stringify({ ...parsed.value, file: stored.path });
        fileInput.value = '';
      }
      const r = await api(`/stask/workers/${enc(identifier)}/tasks/${enc(action)}`, { method: 'POST', body });
      out.classList.remove('is-error');
      out.classList.add('is-ok');
      out.replaceChildren(`Task #${r.id} created `,
        el('a', { class: 'open-task', href: `#task/${r.id}`, 'data-task-id': r.id }, `open task #${r.id}`));
    } catch (e) {
      showResult(out, e.message, 'error');
    }
  });
}

async function saveSettings(form) {
  const identifier = form.closest('.worker').dataset.identifier;
  const textarea = $('.settings', form);
  const out = $('.settings-result', form);
  const parsed = parseObject(textarea.value);
  if (parsed.error) {
    showResult(out, parsed.error, 'error');
    return;
  }
  await withBusy($('.save-settings', form), async () => {
    try {
      const r = await api(`/stask/workers/${enc(identifier)}/settings`, { method: 'PUT', body: textarea.value });
      textarea.value = pretty(r.settings ?? {});
      delete textarea.dataset.dirty;
      showResult(out, 'Settings saved');
    } catch (e) {
      showResult(out, e.message, 'error');
    }
  });
}

async function toggleWorker(button) {
  const card = button.closest('.worker');
  const identifier = card.dataset.identifier;
  const activate = button.textContent === 'Activate';
  await withBusy(button, async () => {
    try {
      const r = await api(`/stask/workers/${enc(identifier)}/${activate ? 'activate' : 'deactivate'}`, { method: 'POST' });
      showResult('#workers-result', r.message || 'Done');
      await refreshNow('workers');
    } catch (e) {
      showResult('#workers-result', e.message, 'error');
    }
  });
}

/** Pause (tasks are accepted and wait) or resume a worker's queue. */
async function togglePaused(button) {
  const identifier = button.closest('.worker').dataset.identifier;
  const pause = button.textContent === 'Pause';
  await withBusy(button, async () => {
    try {
      const r = await api(`/stask/workers/${enc(identifier)}/${pause ? 'pause' : 'resume'}`, { method: 'POST' });
      showResult('#workers-result', r.message || 'Done');
      await refreshNow('workers');
    } catch (e) {
      showResult('#workers-result', e.message, 'error');
    }
  });
}

/** Discover / rescan: POST, then a summary of what happened to each library file. */
async function scanPlugins(kind, button) {
  await withBusy(button, async () => {
    try {
      const r = await api(`/stask/workers/${kind}`, { method: 'POST' });
      const files = r.files || [];
      const count = (o) => files.filter((f) => f.outcome === o).length;
      const out = $('#workers-result');
      out.className = 'result is-ok';
      out.replaceChildren();
      append(out, [
        el('p', {}, `${kind === 'rescan' ? 'Rescan' : 'Discover'}: ${files.length} library file${files.length === 1 ? '' : 's'}, ` +
          `${count('loaded')} loaded, ${count('unchanged')} unchanged, ${count('refused')} refused.`),
        files.length ? el('ul', { class: 'plain-list scan-files' }, files.map((f) => el('li', { class: `outcome-${token(f.outcome)}` },
          el('code', {}, f.file), ` ${f.outcome}`,
          f.identifier ? ` (${f.identifier}${f.version ? ` ${f.version}` : ''})` : '',
          f.error ? `: ${f.error}` : ''))) : null]);
      await refreshNow('workers');
    } catch (e) {
      showResult('#workers-result', e.message, 'error');
    }
  });
}

async function cleanOrphaned(button) {
  await withBusy(button, async () => {
    try {
      const r = await api('/stask/workers/clean-orphaned', { method: 'POST' });
      showResult('#workers-result', r.message || `Removed ${r.deleted} workers`);
      await refreshNow('workers');
    } catch (e) {
      showResult('#workers-result', e.message, 'error');
    }
  });
}

/* ------------------------------------------------------------------ performance */

async function loadPerformance() {
  const hours = Number($('#perf-hours').value) || 24;
  const buckets = TIMELINE_BUCKETS[hours] || 24;
  await Promise.all([
    api(`/stask/performance/summary?hours=${hours}`).then(renderSummary),
    api(`/stask/performance/workers?hours=${hours}`).then(renderPerfWorkers),
    api('/stask/performance/alerts').then(renderAlerts),
    api('/stask/cache/stats').then((d) => renderCache(d.cache_stats || {})),
    api(`/stask/performance/timeline?hours=${hours}&buckets=${buckets}`)
      .then((d) => {
        state.timeline = d;
        $('#timeline-note').hidden = true;
        drawTimeline(d);
      })
      .catch((e) => {
        state.timeline = null;
        $('#timeline-chart').replaceChildren();
        const note = $('#timeline-note');
        note.hidden = false;
        note.textContent = `Timeline unavailable: ${e.message}`;
      }),
  ].map((p) => p.catch(reportError)));
}

function kvList(pairs) {
  return el('dl', { class: 'kv' }, pairs.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function renderSummary(s) {
  const t = s.tasks || {};
  const p = s.performance || {};
  const errors = s.common_errors || [];
  $('#perf-summary').replaceChildren(
    kvList([
      ['Tasks', t.total ?? 0],
      ['Completed', t.completed ?? 0],
      ['Failed', t.failed ?? 0],
      ['Cancelled', t.cancelled ?? 0],
      ['Running', t.running ?? 0],
      ['Queued', t.queued ?? 0],
      ['Success rate', fmtPercent(p.success_rate)],
      ['Error rate', fmtPercent(p.error_rate)],
      ['Average duration', fmtSeconds(p.average_duration)],
      ['p50 duration', fmtSeconds(p.p50_duration)],
      ['p95 duration', fmtSeconds(p.p95_duration)],
      ['Max duration', fmtSeconds(p.max_duration)],
      ['Average wait', fmtSeconds(p.average_wait)],
      ['p95 wait', fmtSeconds(p.p95_wait)],
      ['Average CPU time', fmtSeconds(p.average_cpu_time)],
      ['Average memory', p.average_memory == null ? '—' : fmtBytes(p.average_memory)],
      ['Max memory', p.max_memory == null ? '—' : fmtBytes(p.max_memory)],
      ['Throughput', `${fmtNumber(p.throughput_per_minute ?? 0)} / min`],
    ]),
    el('h4', {}, 'Common errors'),
    errors.length
      ? el('ol', { class: 'common-errors' }, errors.map((e) => el('li', {}, el('span', { class: 'count' }, `${e.count}×`), ' ', e.message)))
      : el('p', { class: 'muted' }, 'No failures in this window'),
  );
}

function renderPerfWorkers(data) {
  const rows = Object.entries(data.workers || {}).sort(([a], [b]) => a.localeCompare(b));
  const tbody = $('#perf-workers tbody');
  if (!rows.length) {
    tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: 8 }, 'No tasks in this window')));
    return;
  }
  tbody.replaceChildren(...rows.map(([identifier, w]) => el('tr', { 'data-identifier': identifier },
    el('td', {}, identifier),
    el('td', {}, w.total_tasks ?? 0),
    el('td', {}, fmtPercent(w.success_rate)),
    el('td', {}, fmtSeconds(w.average_duration)),
    el('td', { class: 'col-optional' }, fmtSeconds(w.p95_duration)),
    el('td', {}, w.failures ?? 0),
    el('td', { class: 'col-optional' }, fmtTime(w.last_execution)),
    el('td', { class: 'col-optional' }, (w.versions || []).join(', ') || '—'))));
}

function renderAlerts(data) {
  const alerts = data.alerts || [];
  const list = $('#perf-alerts');
  if (!alerts.length) {
    list.replaceChildren(el('li', { class: 'empty' }, 'No alerts'));
    return;
  }
  list.replaceChildren(...alerts.map((a) => el('li', { class: `alert alert-${token(a.severity)}` },
    el('span', { class: `severity ${token(a.severity)}` }, a.severity), ' ',
    el('code', { class: 'alert-type' }, a.type),
    el('div', { class: 'alert-message' }, a.message),
    el('div', { class: 'muted small' }, `value ${fmtNumber(a.value)} · threshold ${fmtNumber(a.threshold)}`))));
}

function renderCache(c) {
  $('#cache-stats').replaceChildren(...[
    ['Hits', c.hits ?? 0],
    ['Misses', c.misses ?? 0],
    ['Evictions', c.evictions ?? 0],
    ['Hit rate', fmtPercent(c.hit_rate)],
    ['Entries', c.cache_size ?? 0],
    ['Memory', fmtBytes(c.memory_usage)],
  ].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

async function clearCache(button) {
  await withBusy(button, async () => {
    try {
      const r = await api('/stask/cache/clear', { method: 'POST', body: {} });
      showResult('#cache-result', `${r.message || 'Cache cleared'} (${r.cleared ?? 0} entries)`);
      renderCache((await api('/stask/cache/stats')).cache_stats || {});
    } catch (e) {
      showResult('#cache-result', e.message, 'error');
    }
  });
}

/** An axis maximum of 4 steps of 1, 2 or 5 × 10^k, so that the tick labels are round. */
function niceMax(value) {
  const raw = Math.max(1, value / 4);
  const exp = 10 ** Math.floor(Math.log10(raw));
  const f = raw / exp;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * exp * 4;
}

function bucketLabel(iso, spanSeconds) {
  const d = new Date(iso);
  if (spanSeconds > 86400) {
    return d.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' });
  }
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * Grouped bar chart (completed, failed per bucket). The viewBox follows the element's real width
 * so labels keep their size on a phone instead of being scaled down.
 */
function drawTimeline(data) {
  const svg = $('#timeline-chart');
  const points = data.points || [];
  const W = Math.max(300, Math.round(svg.clientWidth || 640));
  const H = 240;
  const m = { top: 34, right: 12, bottom: 30, left: 40 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);

  const max = niceMax(Math.max(0, ...points.map((p) => Math.max(p.completed, p.failed))));
  const y = (v) => m.top + ph - (v / max) * ph;
  const totalCompleted = points.reduce((s, p) => s + p.completed, 0);
  const totalFailed = points.reduce((s, p) => s + p.failed, 0);
  const nodes = [
    svgEl('desc', { id: 'timeline-desc' }, `${totalCompleted} completed and ${totalFailed} failed tasks, ${points.length} intervals of ${fmtSeconds(data.bucket_seconds)}`),
  ];

  // Grid lines and y labels at 0, 1/4 ... max.
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    nodes.push(svgEl('line', { class: 'grid', x1: m.left, x2: W - m.right, y1: y(v), y2: y(v) }));
    nodes.push(svgEl('text', { class: 'axis-label', x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtNumber(v, 1)));
  }

  const slot = points.length ? pw / points.length : pw;
  const barW = Math.max(1, Math.min(24, slot * 0.38));
  const labelEvery = Math.max(1, Math.ceil(points.length / Math.max(1, Math.floor(pw / 80))));
  const span = (Date.parse(data.to) - Date.parse(data.from)) / 1000 || 0;
  points.forEach((p, i) => {
    const cx = m.left + slot * i + slot / 2;
    const label = bucketLabel(p.at, span);
    for (const [series, value, dx] of [['completed', p.completed, -barW], ['failed', p.failed, 0]]) {
      const top = y(value);
      nodes.push(svgEl('rect', {
        class: `bar-${series}`, x: cx + dx, y: top, width: barW, height: Math.max(0, m.top + ph - top),
      }, svgEl('title', {}, `${label}: ${value} ${series}`)));
    }
    if (i % labelEvery === 0) {
      nodes.push(svgEl('text', { class: 'axis-label', x: cx, y: H - m.bottom + 16, 'text-anchor': 'middle' }, label));
    }
  });
  nodes.push(svgEl('line', { class: 'axis', x1: m.left, x2: W - m.right, y1: m.top + ph, y2: m.top + ph }));

  if (!totalCompleted && !totalFailed) {
    nodes.push(svgEl('text', { class: 'chart-empty', x: m.left + pw / 2, y: m.top + ph / 2, 'text-anchor': 'middle' }, 'No finished tasks in this window'));
  }

  // Legend, top left.
  const legend = svgEl('g', { class: 'legend' });
  [['completed', 'Completed'], ['failed', 'Failed']].forEach(([series, text], i) => {
    const x = m.left + i * 110;
    legend.append(
      svgEl('rect', { class: `bar-${series}`, x, y: 8, width: 12, height: 12, rx: 2 }),
      svgEl('text', { class: 'legend-label', x: x + 18, y: 18 }, `${text} (${series === 'completed' ? totalCompleted : totalFailed})`));
  });
  nodes.push(legend);
  svg.replaceChildren(...nodes);
}

/* ------------------------------------------------------------------ batches */

/** A link that opens batch `id` in the Batches tab (the click handler knows `a.open-batch`). */
function batchLink(id) {
  return el('a', { class: 'open-batch', href: `#batch/${id}`, 'data-batch-id': id }, `Batch #${id}`);
}

async function loadBatches() {
  const data = await api('/stask/batches?per_page=50');
  renderBatches(data.batches || []);
  if (state.batchId) await loadBatch();
}

function renderBatches(batches) {
  const tbody = $('#batches-table tbody');
  if (!batches.length) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'empty' }, 'No batches yet: POST /stask/batches creates one.')));
    return;
  }
  tbody.replaceChildren(...batches.map((b) => el('tr', { 'data-batch-id': String(b.id) },
    el('td', {}, batchLink(b.id)),
    el('td', {}, b.name || '—'),
    el('td', {}, fmtTime(b.created_at)),
    el('td', {}, String(b.total)),
    el('td', {}, progressBar(b.progress, `Batch ${b.id} progress`), el('span', { class: 'bar-text' }, `${Math.round(b.progress)}%`)),
    el('td', { class: 'col-optional' }, `${b.counts.completed} / ${b.counts.failed} / ${b.counts.cancelled}`),
  )));
}

async function openBatch(id) {
  state.batchId = Number(id);
  history.replaceState(null, '', `#batch/${state.batchId}`);
  if (state.tab !== 'batches') showTab('batches');
  await loadBatch().catch(reportError);
}

async function loadBatch() {
  const id = state.batchId;
  const data = await api(`/stask/batches/${id}`);
  if (state.batchId !== id) return;
  renderBatch(data.batch);
}

function renderBatch(b) {
  $('#batch-detail').hidden = false;
  setText('#batch-title', `Batch #${b.id}`);
  setBar($('#batch-bar'), b.progress);
  setText('#batch-name', b.name || '—');
  setText('#batch-created', fmtTime(b.created_at));
  setText('#batch-total', String(b.total));
  setText('#batch-finished', `${b.finished} of ${b.total}${b.done ? ' (done)' : ''}`);
  setText('#batch-eta', b.eta_seconds == null ? '—' : fmtSeconds(b.eta_seconds));
  $('#batch-on-complete').replaceChildren(b.on_complete_task_id ? taskLink(b.on_complete_task_id) : '—');
  setText('#batch-cancelled', b.cancelled_at ? fmtTime(b.cancelled_at) : '—');
  const counts = ['pending', 'preparing', 'running', 'completed', 'failed', 'cancelled'];
  $('#batch-counts').replaceChildren(...counts.map((name) => el('li', { class: `batch-count batch-count-${name}`, 'data-status': name },
    statusBadge(name), ' ', el('span', { class: 'count' }, String(b.counts[name] ?? 0)))));
  $('#batch-tasks-link').setAttribute('href', `#tasks`);
  $('#batch-tasks-link').dataset.batchId = String(b.id);
  $('#batch-cancel').disabled = b.done;
}

async function cancelBatch(button) {
  const id = state.batchId;
  if (!id) return;
  await withBusy(button, async () => {
    try {
      const data = await api(`/stask/batches/${id}/cancel`, { method: 'POST', body: {} });
      showResult('#batch-result', `Cancelled ${data.cancelled} pending tasks; ${data.requested} running tasks asked to stop.`);
      renderBatch(data.batch);
    } catch (e) {
      showResult('#batch-result', e.message, 'error');
    }
  });
}

/** The Tasks tab filtered to one batch's tasks. */
function showBatchTasks(id) {
  state.filters = { batch_id: String(id) };
  state.page = 1;
  showTab('tasks');
}

/* ------------------------------------------------------------------ schedules */

async function loadSchedules() {
  const data = await api('/stask/schedules');
  renderSchedules(data.schedules || []);
}

function renderSchedules(schedules) {
  const tbody = $('#schedules-table tbody');
  if (!schedules.length) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: '9', class: 'empty' }, 'No schedules yet: create one below, or add [[schedules]] to stask.toml.')));
    return;
  }
  tbody.replaceChildren(...schedules.map((s) => el('tr', { 'data-schedule-id': String(s.id) },
    el('td', {}, s.name),
    el('td', {}, `${s.identifier} / ${s.action}`),
    el('td', {}, el('code', {}, s.cron)),
    el('td', { class: 'col-optional' }, s.timezone),
    el('td', { class: 'schedule-enabled' }, s.enabled ? 'yes' : 'no'),
    el('td', { class: 'col-optional' }, s.source),
    el('td', {}, s.last_run_at ? fmtTime(s.last_run_at) : '—'),
    el('td', {}, s.next_run_at ? fmtTime(s.next_run_at) : '—'),
    el('td', {},
      el('button', { type: 'button', class: 'btn schedule-toggle needs-admin' }, s.enabled ? 'Disable' : 'Enable'),
      ' ',
      el('button', { type: 'button', class: 'btn btn-ghost schedule-delete needs-admin' }, 'Delete')),
  )));
}

async function createSchedule(event) {
  event.preventDefault();
  const out = '#schedules-result';
  const parsed = parseObject($('#s-data').value);
  if (parsed.error) {
    showResult(out, parsed.error, 'error');
    return;
  }
  const data = parsed.value;
  const body = {
    name: $('#s-name').value.trim(),
    identifier: $('#s-worker').value.trim(),
    action: $('#s-action').value.trim(),
    cron: $('#s-cron').value.trim(),
    timezone: $('#s-timezone').value.trim() || 'UTC',
    priority: $('#s-priority').value,
    data,
    catch_up: $('#s-catch-up').checked,
  };
  await withBusy($('#s-create'), async () => {
    try {
      const r = await api('/stask/schedules', { method: 'POST', body: JSON.stringify(body) });
      showResult(out, `${r.message || 'Schedule created'}: ${r.schedule.name}`);
      $('#s-name').value = '';
      await refreshNow('schedules');
    } catch (e) {
      showResult(out, e.message, 'error');
    }
  });
}

/** Enable/disable or delete the schedule of the button's row. */
async function scheduleCommand(button) {
  const id = button.closest('tr[data-schedule-id]').dataset.scheduleId;
  const del = button.classList.contains('schedule-delete');
  const path = del ? `/stask/schedules/${enc(id)}`
    : `/stask/schedules/${enc(id)}/${button.textContent === 'Enable' ? 'enable' : 'disable'}`;
  await withBusy(button, async () => {
    try {
      const r = await api(path, { method: del ? 'DELETE' : 'POST' });
      showResult('#schedules-result', r.message || 'Done');
      await refreshNow('schedules');
    } catch (e) {
      showResult('#schedules-result', e.message, 'error');
    }
  });
}

/* ------------------------------------------------------------------ audit log */

/** A datetime-local value as RFC 3339 (the browser's time zone), or '' when empty. */
function localToIso(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

async function loadAudit() {
  const q = new URLSearchParams({ per_page: '100' });
  const add = (key, value) => { if (value) q.set(key, value); };
  add('token', $('#a-token').value.trim());
  add('route', $('#a-route').value.trim());
  add('status', $('#a-status').value);
  add('since', localToIso($('#a-since').value));
  add('until', localToIso($('#a-until').value));
  let data;
  try {
    data = await api(`/stask/audit?${q}`);
  } catch (e) {
    showResult('#audit-result', e.message, 'error');
    return;
  }
  $('#audit-result').replaceChildren();
  renderAudit(data.entries || [], data.total || 0);
}

function renderAudit(entries, total) {
  const tbody = $('#audit-table tbody');
  setText('#audit-count', `${entries.length} of ${total} entries, newest first`);
  if (!entries.length) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: '7', class: 'empty' }, 'No entries match.')));
    return;
  }
  tbody.replaceChildren(...entries.map((e) => {
    const created = (e.created_ids || []).length ? ` created ${e.created_ids.join(', ')}` : '';
    return el('tr', { 'data-audit-id': String(e.id) },
      el('td', {}, fmtTime(e.at)),
      el('td', { class: 'audit-who' }, e.via_session ? `${e.who} (session)` : e.who),
      el('td', { class: 'col-optional' }, e.role || '—'),
      el('td', { class: 'audit-request' }, el('code', {}, `${e.method} ${e.route}`)),
      el('td', {}, `${e.target || ''}${created}`.trim() || '—'),
      el('td', { class: `audit-status status-${token(String(e.status)[0])}xx` }, String(e.status)),
      el('td', { class: 'col-optional' }, e.client || '—'));
  }));
}

/* ------------------------------------------------------------------ refresh scheduling */

// One entry per tab. Live events only mark the visible tab for a refresh, throttled to one
// load per `every` ms; hidden tabs are loaded when they are shown.
const areas = {
  dashboard: { load: loadDashboard, every: 500 },
  tasks: { load: loadTasks, every: 500 },
  workers: { load: loadWorkers, every: 500 },
  batches: { load: loadBatches, every: 1000 },
  schedules: { load: loadSchedules, every: 1000 },
  performance: { load: loadPerformance, every: 10000 },
  audit: { load: loadAudit, every: 2000 },
};
for (const a of Object.values(areas)) Object.assign(a, { last: 0, timer: null, running: null, again: false });

function refreshNow(name) {
  const a = areas[name];
  if (!state.csrf) return Promise.resolve();
  if (a.running) {
    a.again = true; // reload once more after the current load
    return a.running;
  }
  a.last = Date.now();
  a.running = Promise.resolve()
    .then(a.load)
    .catch(reportError)
    .finally(() => {
      a.running = null;
      if (a.again) {
        a.again = false;
        invalidate(name);
      }
    });
  return a.running;
}

function invalidate(...names) {
  for (const name of names) {
    const a = areas[name];
    if (state.tab !== name || a.timer) continue;
    const wait = Math.max(0, a.last + a.every - Date.now());
    a.timer = setTimeout(() => {
      a.timer = null;
      if (state.tab === name) refreshNow(name);
    }, wait);
  }
}

/* ------------------------------------------------------------------ live events */

const live = { source: null, retryTimer: null, retryDelay: 2000, hadError: false };

// Progress events can arrive by the hundred per second: keep the latest per task and apply
// them once per animation frame.
const progressQueue = new Map();
let progressFrame = 0;

function queuePatch(id, patch) {
  const merged = { ...(progressQueue.get(id) || {}) };
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) merged[k] = v;
  progressQueue.set(id, merged);
  if (!progressFrame) progressFrame = requestAnimationFrame(flushPatches);
}

function flushPatches() {
  progressFrame = 0;
  for (const [id, patch] of progressQueue) {
    patchTaskRows(id, patch);
    if (id === state.detailId && state.detailTask) {
      Object.assign(state.detailTask, patch);
      renderDetailLive(state.detailTask);
    }
  }
  progressQueue.clear();
}

const eventHandlers = {
  task_created() {
    invalidate('dashboard', 'tasks', 'performance', 'schedules');
  },
  task_progress(e) {
    queuePatch(e.id, { status: e.status, progress: e.progress, message: e.message, eta: e.eta ?? '' });
  },
  task_log(e) {
    if (e.id === state.detailId) appendLogLine(e);
  },
  task_finished(e) {
    queuePatch(e.id, { status: e.status, message: e.message, eta: '', progress: e.status === 'completed' ? 100 : undefined });
    invalidate('dashboard', 'tasks', 'performance');
    if (e.id === state.detailId) scheduleDetailReload(250, true);
  },
  worker_loaded() {
    invalidate('workers', 'dashboard');
  },
  worker_orphaned() {
    invalidate('workers', 'dashboard');
  },
  worker_paused() {
    // The worker's badge, and the waiting message of its pending tasks.
    invalidate('workers', 'dashboard', 'tasks');
  },
  plugin_error(e) {
    notify(`Plugin file ${e.file} refused: ${e.reason}`);
    invalidate('workers', 'dashboard');
  },
  alert(e) {
    if (e.state === 'started' && e.alert) notify(`Alert: ${e.alert.message}`);
    invalidate('performance');
  },
  lagged() {
    refreshVisible(); // events were missed: re-read what is on screen
  },
};

function setLive(status) {
  const node = $('#live-status');
  node.textContent = status;
  node.className = `live-status live-${token(status)}`;
}

function connectEvents() {
  disconnectEvents();
  const source = new EventSource('/stask/events');
  live.source = source;
  setLive('connecting');
  source.addEventListener('open', () => {
    setLive('live');
    live.retryDelay = 2000;
    if (live.hadError) {
      live.hadError = false;
      refreshVisible(); // the host may have restarted: events were missed meanwhile
    }
  });
  source.addEventListener('error', () => {
    live.hadError = true;
    setLive('reconnecting');
    // The browser retries by itself after a dropped connection; it gives up (CLOSED) on an
    // HTTP error such as 401, so check the session and retry ourselves, with a backoff.
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      if (live.source === source) live.source = null;
      scheduleReconnect();
    }
  });
  for (const [name, handler] of Object.entries(eventHandlers)) {
    source.addEventListener(name, (event) => {
      let data = {};
      try {
        data = event.data ? JSON.parse(event.data) : {};
      } catch {
        return;
      }
      handler(data);
    });
  }
}

function scheduleReconnect() {
  clearTimeout(live.retryTimer);
  live.retryTimer = setTimeout(async () => {
    if (!state.csrf) return;
    try {
      await api('/stask/session'); // a 401 here ends the session (see api())
      connectEvents();
    } catch (e) {
      if (e.status !== 401) {
        live.retryDelay = Math.min(live.retryDelay * 2, 30000);
        scheduleReconnect();
      }
    }
  }, live.retryDelay);
}

function disconnectEvents() {
  clearTimeout(live.retryTimer);
  live.retryTimer = null;
  if (live.source) live.source.close();
  live.source = null;
}

function refreshVisible() {
  refreshNow(state.tab);
  if (state.detailId) scheduleDetailReload(0, true);
}

/* ------------------------------------------------------------------ tabs and routing */

function showTab(name) {
  if (!TAB_NAMES.includes(name)) name = 'dashboard';
  state.tab = name;
  for (const button of $$('[data-tab]')) {
    const on = button.dataset.tab === name;
    button.setAttribute('aria-selected', String(on));
    if (on) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  for (const panel of $$('.tab-panel')) panel.hidden = panel.id !== `tab-${name}`;
  if (!(name === 'tasks' && state.detailId)) history.replaceState(null, '', `#${name}`);
  refreshNow(name);
}

/** Arrow keys move between tabs (Tab still reaches each button, too). */
function onTabKey(event) {
  const buttons = $$('[data-tab]');
  const i = buttons.indexOf(event.target);
  if (i < 0) return;
  let next = null;
  if (event.key === 'ArrowRight') next = buttons[(i + 1) % buttons.length];
  else if (event.key === 'ArrowLeft') next = buttons[(i - 1 + buttons.length) % buttons.length];
  else if (event.key === 'Home') next = buttons[0];
  else if (event.key === 'End') next = buttons[buttons.length - 1];
  if (!next) return;
  event.preventDefault();
  next.focus();
  showTab(next.dataset.tab);
}

/** #tasks, #workers... or #task/ID. */
function routeFromHash() {
  const hash = location.hash.replace(/^#/, '');
  const task = /^task\/(\d+)$/.exec(hash);
  const batch = /^batch\/(\d+)$/.exec(hash);
  if (batch) {
    state.batchId = Number(batch[1]);
    showTab('batches');
    history.replaceState(null, '', `#batch/${state.batchId}`);
  } else if (task) {
    showTab('tasks');
    openTask(Number(task[1]), { focus: false });
  } else {
    showTab(TAB_NAMES.includes(hash) ? hash : 'dashboard');
  }
}

/* ------------------------------------------------------------------ session */

function startApp(session) {
  state.csrf = session.csrf_token;
  // What the role may not do is hidden by the stylesheet (`.needs-operate`, `.needs-admin`);
  // the server refuses it anyway (403 naming the role needed).
  document.body.dataset.role = session.role || 'admin';
  $('#login-view').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#live-status').hidden = false;
  const who = session.token_name ? `Signed in as ${session.token_name}` : 'Signed in';
  setText('#session-info', `${who} (${session.role || 'admin'})`);
  connectEvents();
  routeFromHash();
}

function showLogin(message = '') {
  state.csrf = null;
  state.detailId = null;
  state.detailTask = null;
  disconnectEvents();
  for (const a of Object.values(areas)) {
    clearTimeout(a.timer);
    a.timer = null;
  }
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#live-status').hidden = true;
  $('#task-detail').hidden = true;
  setText('#session-info', '');
  $('#login-view').hidden = false;
  setText('#login-error', message);
  $('#token').focus();
}

function onSessionLost(message) {
  if (!state.csrf) return; // not logged in (yet): the caller handles it
  showLogin(`Your session ended: ${message}. Sign in again.`);
}

async function login(event) {
  event.preventDefault();
  const input = $('#token');
  const value = input.value.trim();
  if (!value) {
    setText('#login-error', 'Enter an API token.');
    input.focus();
    return;
  }
  setText('#login-error', '');
  await withBusy($('#login-submit'), async () => {
    try {
      const session = await api('/stask/login', { method: 'POST', body: { token: value } });
      input.value = '';
      startApp(session);
    } catch (e) {
      setText('#login-error', e.message);
      input.select();
      input.focus();
    }
  });
}

async function logout() {
  try {
    await api('/stask/logout', { method: 'POST' });
  } catch {
    /* the session may already be gone: log out locally all the same */
  }
  showLogin('Logged out.');
}

/* ------------------------------------------------------------------ wiring */

function onClick(event) {
  const target = event.target;
  // Links to a task (recent errors, "Task #N created") open it in the Tasks tab.
  const link = target.closest('a.open-task');
  if (link) {
    event.preventDefault();
    openTask(link.dataset.taskId);
    return;
  }
  const batchOpen = target.closest('a.open-batch');
  if (batchOpen) {
    event.preventDefault();
    openBatch(batchOpen.dataset.batchId);
    return;
  }
  const batchTasks = target.closest('#batch-tasks-link');
  if (batchTasks) {
    event.preventDefault();
    showBatchTasks(batchTasks.dataset.batchId);
    return;
  }
  const batchCancel = target.closest('#batch-cancel');
  if (batchCancel) {
    cancelBatch(batchCancel);
    return;
  }
  const row = target.closest('tr[data-task-id]');
  if (row && (row.closest('#recent-tasks') || row.closest('#tasks-table'))) {
    if (window.getSelection()?.toString() && !target.closest('button')) return; // selecting text
    openTask(row.dataset.taskId);
    return;
  }
  const toggle = target.closest('.worker .toggle-active');
  if (toggle) toggleWorker(toggle);
  const scheduleButton = target.closest('#schedules-table .schedule-toggle, #schedules-table .schedule-delete');
  if (scheduleButton) scheduleCommand(scheduleButton);
  const pauseToggle = target.closest('.worker .toggle-paused');
  if (pauseToggle) togglePaused(pauseToggle);
}

function onWorkerSubmit(event) {
  const form = event.target;
  if (form.matches('form.run-action')) {
    event.preventDefault();
    runAction(form);
  } else if (form.matches('form.settings-form')) {
    event.preventDefault();
    saveSettings(form);
  }
}

function wire() {
  $('#login').addEventListener('submit', login);
  $('#logout').addEventListener('click', logout);
  $('.tablist').addEventListener('keydown', onTabKey);
  for (const button of $$('[data-tab]')) button.addEventListener('click', () => showTab(button.dataset.tab));
  document.addEventListener('click', onClick);

  $('#clean-form').addEventListener('submit', runClean);
  $('#tasks-filter').addEventListener('submit', applyFilters);
  $('#f-reset').addEventListener('click', resetFilters);
  $('#f-status').addEventListener('change', applyFilters);
  $('#f-priority').addEventListener('change', applyFilters);
  $('#page-prev').addEventListener('click', () => changePage(-1));
  $('#page-next').addEventListener('click', () => changePage(1));

  $('#detail-close').addEventListener('click', closeDetail);
  $('#task-detail').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeDetail();
  });
  $('#btn-cancel').addEventListener('click', () => taskCommand('cancel'));
  $('#btn-retry').addEventListener('click', () => taskCommand('retry'));
  $('#btn-delete').addEventListener('click', () => taskCommand('delete'));

  const workersList = $('#workers-list');
  workersList.addEventListener('submit', onWorkerSubmit);
  // Marks edited textareas so a live refresh keeps their content.
  workersList.addEventListener('input', (e) => {
    if (e.target.matches('textarea')) e.target.dataset.dirty = '1';
  });
  $('#btn-discover').addEventListener('click', (e) => scanPlugins('discover', e.currentTarget));
  $('#btn-rescan').addEventListener('click', (e) => scanPlugins('rescan', e.currentTarget));
  $('#btn-clean-orphaned').addEventListener('click', (e) => cleanOrphaned(e.currentTarget));

  $('#schedule-form').addEventListener('submit', createSchedule);
  $('#audit-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    refreshNow('audit');
  });
  $('#perf-hours').addEventListener('change', () => refreshNow('performance'));
  $('#perf-refresh').addEventListener('click', () => refreshNow('performance'));
  $('#cache-clear').addEventListener('click', (e) => clearCache(e.currentTarget));

  // Redraw the chart at the new width (its text keeps a readable size).
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (state.timeline && state.tab === 'performance') drawTimeline(state.timeline);
    }, 200);
  });
  window.addEventListener('hashchange', () => {
    if (state.csrf) routeFromHash();
  });
}

/** Resumes an existing session (cookie) or shows the login form. */
async function boot() {
  wire();
  try {
    const session = await api('/stask/session');
    startApp(session);
  } catch (e) {
    showLogin(e.status === 401 ? '' : e.message);
  }
}

boot();
