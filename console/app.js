// The stagegate web console: plain modern JavaScript (an ES module), no library and no build.
//
// Served by the admin API at /console/ under a strict Content-Security-Policy (no inline script,
// connect-src 'self'). Every data call goes to the admin API that served this file, with the
// admin token as `Authorization: Bearer`. The token is kept in sessionStorage: it survives a
// reload of this tab, is gone when the tab closes, is never shared with other tabs, never put in
// a URL and never sent by the browser on its own (no cookie, so no CSRF surface). Every text
// shown comes from the DOM's text nodes (never innerHTML), so no data can become markup.

const ROOT = location.pathname.replace(/\/console\/[^/]*$/, ''); // '' or the mount prefix
const STAGES = ['TEST', 'PRE', 'RELEASE'];
const KINDS = ['HTTP', 'VPC', 'FUNCTION_COMPUTE', 'OSS', 'EVENTBRIDGE', 'SERVICE_DISCOVERY', 'MIXED', 'MOCK'];
const KIND_LABEL = {
  HTTP: 'HTTP', VPC: 'VPC', FUNCTION_COMPUTE: 'Function Compute', OSS: 'OSS',
  EVENTBRIDGE: 'EventBridge', SERVICE_DISCOVERY: 'Service discovery', MIXED: 'Mixed', MOCK: 'Mock',
};
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'ANY'];
const TOKEN_KEY = 'stagegate.admin-token';

let token = sessionStorage.getItem(TOKEN_KEY);
let signInMessage = '';
let renderGen = 0;
let pendingFocus = null; // a selector to focus after the next render (e.g. the chosen tab)
let seq = 0;

const $ = (sel) => document.querySelector(sel);
const uid = (p) => `${p}-${++seq}`;

// ----- DOM -----

/** Builds an element: attributes (on* are listeners) and children (strings become text). */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') value = v;
    else if (k === 'checked') el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  if (value !== undefined) el.value = value;
  return el;
}

const options = (items, selected) =>
  items.map(([v, label]) => h('option', { value: v, selected: v === selected }, label));

/** A labelled control with its own error slot (aria-describedby) under it. */
function field(label, control, hint) {
  control.id ||= uid('f');
  const err = h('p', { class: 'error', id: `${control.id}-err`, 'aria-live': 'polite' });
  const described = [err.id];
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${control.id}-hint` }, hint);
    described.push(hintEl.id);
  }
  control.setAttribute('aria-describedby', described.join(' '));
  const wrap = h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl, err);
  wrap.control = control;
  wrap.err = err;
  return wrap;
}

function checkbox(label, checked, attrs = {}) {
  const input = h('input', { type: 'checkbox', checked, ...attrs });
  const wrap = h('div', { class: 'field' }, h('label', { class: 'inline' }, input, label));
  wrap.control = input;
  wrap.err = h('p', { class: 'error' });
  wrap.append(wrap.err);
  return wrap;
}

function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  toast.at = Date.now();
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.textContent = ''; }, 6000);
}

const badge = (text, on) => h('span', { class: `badge ${on ? 'on' : 'off'}` }, text);
const empty = (text, ...extra) => h('div', { class: 'state', role: 'status' }, h('p', {}, text), ...extra);
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '');

/** A table that stacks into cards on a phone; `cols` are [header, cell(row)]. */
function table(cols, rows, caption) {
  return h('div', { class: 'scroll' }, h('table', { class: 'stack' },
    caption ? h('caption', { class: 'muted' }, caption) : null,
    h('thead', {}, h('tr', {}, cols.map(([t]) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, cols.map(([t, cell]) => h('td', { 'data-label': t }, cell(r))))))));
}

// ----- the admin API -----

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(ROOT + path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'NetworkError', `The admin API could not be reached (${e.message}). Check that the gateway is running, then retry.`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (res.status === 401) {
    signOut('The admin API no longer accepts your token: sign in again.');
    throw new ApiError(401, 'Unauthorized', 'Sign in again.');
  }
  if (!res.ok) {
    throw new ApiError(res.status, data?.code || `HTTP ${res.status}`,
      data?.message || `The admin API answered ${res.status} ${res.statusText}.`);
  }
  return data;
}

const enc = encodeURIComponent;

function signOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  signInMessage = message || '';
  if ($('#dialog').open) $('#dialog').close();
  render();
}

// ----- forms and dialogs -----

/**
 * A form whose submit runs `onSubmit` with a busy state; a refusal is shown next to the field it
 * names (`invalid <field>: ...`, or the name for a clash), else next to the submit button.
 */
function form(fields, submitLabel, onSubmit, extraButtons = []) {
  const submit = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const err = h('p', { class: 'error', role: 'alert', 'data-form-error': true });
  const f = h('form', { novalidate: true }, fields, h('div', { class: 'actions' }, submit, extraButtons), err);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const slot of f.querySelectorAll('.error')) slot.textContent = '';
    for (const c of f.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
    submit.disabled = true;
    const label = submit.textContent;
    submit.textContent = 'Working…';
    try {
      await onSubmit();
    } catch (ex) {
      if (ex.status !== 401) showError(f, ex, err);
    } finally {
      submit.disabled = false;
      submit.textContent = label;
    }
  });
  return f;
}

function showError(scope, ex, fallback) {
  const msg = ex.message || String(ex);
  let name = /^invalid ([A-Za-z_.\-\[\]0-9]+)\s*:/.exec(msg)?.[1];
  if (!name && ex.code === 'AlreadyExists') name = 'name';
  let target = null;
  if (name) {
    const base = name.split(/[.[]/).pop().replace(/\]$/, '');
    target = scope.querySelector(`[data-field="${CSS.escape(name)}"]`)
      || scope.querySelector(`[data-field="${CSS.escape(base)}"]`);
  }
  if (target) {
    target.setAttribute('aria-invalid', 'true');
    document.getElementById(`${target.id}-err`).textContent = msg;
    target.focus();
  } else {
    fallback.textContent = msg;
  }
}

/** Opens the one modal dialog; `build(close)` gives its content. Escape closes it. */
function openDialog(title, build) {
  const d = $('#dialog');
  if (d.open) d.close();
  const close = () => d.close();
  d.replaceChildren(h('h2', { id: 'dialog-title' }, title), ...[build(close)].flat());
  const back = document.activeElement;
  d.addEventListener('close', () => {
    d.replaceChildren();
    if (back && document.contains(back)) back.focus();
  }, { once: true });
  d.showModal();
  (d.querySelector('input, select, textarea') || d.querySelector('button'))?.focus();
}

function setDialogBody(...nodes) {
  const d = $('#dialog');
  d.replaceChildren(d.querySelector('h2'), ...nodes.flat());
  (d.querySelector('.impact button.primary, input, select, textarea') || d.querySelector('button'))?.focus();
}

const focusables = (root) => [...root.querySelectorAll(
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])',
)].filter((el) => el.offsetParent !== null || el === document.activeElement);

// Focus stays inside the open dialog: Tab from the last control goes to the first, and back.
$('#dialog').addEventListener('keydown', (e) => {
  if (e.key !== 'Tab') return;
  const f = focusables(e.currentTarget);
  if (!f.length) return;
  const first = f[0];
  const last = f[f.length - 1];
  if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
});

const cancelButton = (close) => h('button', { type: 'button', onclick: close }, 'Cancel');

/** A dialog that asks before doing something; `run` may throw, shown next to the button. */
function confirmDialog(title, body, confirmLabel, run, danger = true) {
  openDialog(title, (close) => {
    const err = h('p', { class: 'error', role: 'alert' });
    const go = h('button', { type: 'button', class: danger ? 'primary danger' : 'primary' }, confirmLabel);
    go.addEventListener('click', async () => {
      go.disabled = true;
      err.textContent = '';
      try {
        await run(close);
      } catch (ex) {
        if (ex.status !== 401) err.textContent = ex.message;
      } finally {
        go.disabled = false;
      }
    });
    return [h('div', {}, body), h('div', { class: 'actions' }, go, cancelButton(close)), err];
  });
}

// ----- sign-in -----

function signInPage() {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: true, 'data-field': 'token' });
  const f = field('Admin token', input, 'The bearer token of the admin API. It is kept in this tab only (sessionStorage) and sent only as an Authorization header.');
  const msg = signInMessage ? h('p', { class: 'notice', role: 'alert' }, signInMessage) : null;
  const fm = form([f], 'Sign in', async () => {
    const candidate = input.value.trim();
    if (!candidate) throw new ApiError(400, 'InvalidParameter', 'invalid token: enter the admin token');
    let res;
    try {
      res = await fetch(`${ROOT}/backends`, { headers: { Authorization: `Bearer ${candidate}` }, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new ApiError(0, 'NetworkError', `The admin API could not be reached (${e.message}).`);
    }
    if (res.status === 401) throw new ApiError(400, 'Unauthorized', 'invalid token: the admin API refused this token');
    if (!res.ok) throw new ApiError(res.status, 'Error', `The admin API answered ${res.status}.`);
    token = candidate;
    sessionStorage.setItem(TOKEN_KEY, token);
    signInMessage = '';
    if (!location.hash || location.hash === '#/') location.hash = '#/backends';
    else render();
  });
  return h('section', { class: 'signin' }, h('h1', {}, 'Sign in to the stagegate console'), msg, fm);
}

// ----- Backend Services -----

async function backendsPage() {
  const list = await api('GET', '/backends');
  const search = h('input', { type: 'search', placeholder: 'name contains…' });
  const kind = h('select', {}, options([['', 'All types'], ...KINDS.map((k) => [k, KIND_LABEL[k]])], ''));
  const body = h('div');
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const rows = list.filter((b) => (!q || b.name.toLowerCase().includes(q)) && (!kind.value || b.type === kind.value));
    body.replaceChildren(rows.length ? table([
      ['Name', (b) => h('a', { href: `#/backends/${b.id}/TEST` }, b.name)],
      ['Type', (b) => KIND_LABEL[b.type] || b.type],
      ['Environments', (b) => STAGES.map((s) => badge(s, b.stages?.[s]))],
      ['Description', (b) => b.description || ''],
      ['Actions', (b) => h('div', { class: 'actions' },
        h('button', { type: 'button', 'aria-label': `Rename ${b.name}`, onclick: () => renameBackend(b) }, 'Rename'),
        h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${b.name}`, onclick: () => deleteBackend(b) }, 'Delete'))],
    ], rows) : empty(list.length ? 'No backend service matches.' : 'No backend service yet: create one to begin.'));
  };
  search.addEventListener('input', draw);
  kind.addEventListener('change', draw);
  draw();
  return [
    h('h1', {}, 'Backend Services'),
    h('div', { class: 'bar' },
      h('div', { class: 'grow' }, field('Search by name', search)),
      field('Type', kind),
      h('div', { class: 'field' }, h('button', { type: 'button', class: 'primary', onclick: createBackend }, 'Create Backend Service'))),
    body,
  ];
}

function createBackend() {
  openDialog('Create Backend Service', (close) => {
    const name = field('Name', h('input', { 'data-field': 'name', required: true, autocomplete: 'off' }));
    const kind = field('Type', h('select', { 'data-field': 'type' }, options(KINDS.map((k) => [k, KIND_LABEL[k]]), 'HTTP')),
      'Fixed once the service exists.');
    const desc = field('Description', h('textarea', { 'data-field': 'description' }));
    return form([name, kind, desc], 'Create', async () => {
      const b = await api('POST', '/backends', {
        name: name.control.value.trim(), type: kind.control.value,
        description: desc.control.value.trim() || undefined,
      });
      close();
      toast(`Backend service ${b.name} created.`);
      location.hash = `#/backends/${b.id}/TEST`;
    }, [cancelButton(close)]);
  });
}

function renameBackend(b) {
  openDialog(`Rename ${b.name}`, (close) => {
    const name = field('Name', h('input', { 'data-field': 'name', value: b.name }));
    const desc = field('Description', h('textarea', { 'data-field': 'description', value: b.description || '' }));
    return form([name, desc], 'Save', async () => {
      await api('PATCH', `/backends/${enc(b.id)}`, { name: name.control.value.trim(), description: desc.control.value });
      close();
      toast('Saved.');
      render();
    }, [cancelButton(close)]);
  });
}

function deleteBackend(b) {
  confirmDialog(`Delete ${b.name}?`, h('p', {}, `The backend service ${b.name} and its definitions in every environment will be deleted. It is refused while an API uses it.`),
    'Delete backend service', async (close) => {
      await api('DELETE', `/backends/${enc(b.id)}`);
      close();
      toast(`Backend service ${b.name} deleted.`);
      if (location.hash.startsWith('#/backends/')) location.hash = '#/backends'; else render();
    });
}

/** The form fields of a definition of `kind`, filled from `def`; `read()` gives the JSON. */
function definitionFields(kind, def, vpcs) {
  def = def || {};
  const text = (label, key, attrs = {}, hint) => {
    const f = field(label, h('input', { 'data-field': key, value: def[key] ?? '', ...attrs }), hint);
    f.key = key;
    return f;
  };
  const fields = [];
  const extra = {};
  switch (kind) {
    case 'HTTP':
      fields.push(text('Backend URL', 'url', { type: 'url', placeholder: 'http://10.0.0.5:8080' }),
        text('Host header', 'host_header'), text('Timeout (ms)', 'timeout_ms', { inputmode: 'numeric' }));
      break;
    case 'VPC': {
      const sel = h('select', { 'data-field': 'vpc_access_id' },
        options([['', vpcs.length ? 'Choose a VPC authorization' : 'No VPC authorization yet'],
          ...vpcs.map((v) => [v.id, `${v.name} (${v.instance_id}, port ${v.port})`])], def.vpc_access_id || ''));
      const f = field('VPC authorization and port', sel, 'A VPC access authorization names the instance and port the gateway may reach.');
      f.key = 'vpc_access_id';
      fields.push(f, checkbox('Use HTTPS', def.https, { 'data-field': 'https' }),
        text('Host header', 'host_header'), text('Timeout (ms)', 'timeout_ms', { inputmode: 'numeric' }));
      fields.at(-3).key = 'https';
      break;
    }
    case 'FUNCTION_COMPUTE': {
      const ft = h('select', { 'data-field': 'function_type' }, options([['EVENT', 'Event function'], ['HTTP', 'HTTP function']], def.function_type || 'EVENT'));
      const f = field('Function type', ft);
      f.key = 'function_type';
      fields.push(f, text('Region', 'region', { placeholder: 'local' }), text('Service', 'service'), text('Function', 'function'),
        text('Qualifier', 'qualifier', { placeholder: 'LATEST' }), text('Role ARN', 'role_arn'),
        text('Trigger URL (HTTP functions)', 'url', { type: 'url' }), text('Trigger path (HTTP functions)', 'path'));
      extra.function = true;
      break;
    }
    case 'OSS': {
      fields.push(text('Bucket', 'bucket'), text('Endpoint', 'endpoint'), text('Region', 'region'));
      const r = checkbox('Read (GetObject, HeadObject)', def.permissions?.read);
      const w = checkbox('Write (PutObject, DeleteObject)', def.permissions?.write);
      r.key = 'permissions.read';
      w.key = 'permissions.write';
      fields.push(h('fieldset', {}, h('legend', {}, 'Permissions'), r, w));
      extra.perms = [r, w];
      break;
    }
    case 'EVENTBRIDGE':
      fields.push(text('Event bus', 'bus'), text('Event source', 'source'), text('Region', 'region'));
      break;
    case 'SERVICE_DISCOVERY': {
      const reg = h('select', { 'data-field': 'registry' }, options(['NACOS', 'ZOOKEEPER', 'EDAS', 'STATIC', 'DNS'].map((r) => [r, r]), def.registry || 'NACOS'));
      const f = field('Registry', reg);
      f.key = 'registry';
      const addr = field('Addresses (one per line)', h('textarea', { 'data-field': 'addresses', value: (def.addresses || []).join('\n') }));
      addr.key = 'addresses';
      const https = checkbox('Use HTTPS to instances', def.https, { 'data-field': 'https' });
      https.key = 'https';
      fields.push(f, text('Service name', 'service_name'), text('Namespace', 'namespace'), text('Group', 'group'), addr, https);
      break;
    }
    case 'MOCK': {
      const hdrs = field('Headers (one "name: value" a line)', h('textarea', { 'data-field': 'headers',
        value: Object.entries(def.headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n') }));
      hdrs.key = 'headers';
      const body = field('Body', h('textarea', { 'data-field': 'body', value: def.body ?? '' }));
      body.key = 'body';
      fields.push(text('Status code', 'status', { inputmode: 'numeric', value: def.status ?? 200 }), hdrs, body);
      break;
    }
    default:
      break;
  }
  const read = () => {
    const out = { type: kind };
    for (const f of fields) {
      if (!f.key || f.key.includes('.')) continue;
      const c = f.control;
      if (c.type === 'checkbox') { out[f.key] = c.checked; continue; }
      const v = c.value.trim();
      if (v === '') continue;
      if (['timeout_ms', 'status'].includes(f.key)) out[f.key] = Number.isFinite(Number(v)) ? Number(v) : v;
      else if (f.key === 'addresses') out[f.key] = v.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
      else if (f.key === 'headers') {
        out.headers = {};
        for (const line of v.split('\n')) {
          const i = line.indexOf(':');
          if (line.trim()) out.headers[(i < 0 ? line : line.slice(0, i)).trim()] = i < 0 ? '' : line.slice(i + 1).trim();
        }
      } else out[f.key] = v;
    }
    if (extra.perms) out.permissions = { read: extra.perms[0].control.checked, write: extra.perms[1].control.checked };
    if (extra.function) {
      const keep = out.function_type === 'HTTP' ? ['url', 'path'] : ['region', 'service', 'function', 'qualifier', 'role_arn'];
      for (const k of ['url', 'path', 'region', 'service', 'function', 'qualifier', 'role_arn']) if (!keep.includes(k)) delete out[k];
    }
    return out;
  };
  return { fields, read };
}

/** What a change did or would do to the published APIs, as a list a person can check. */
function impactList(stage, report, dryRun) {
  const by = (r) => report.filter((x) => x.result === r);
  const li = (x) => h('li', {}, h('a', { href: `#/apis/${x.api_id}` }, x.api_name), x.error ? ` (${x.error})` : '');
  const verb = dryRun ? 'will be' : 'were';
  const parts = [];
  if (by('republished').length) parts.push(h('p', {}, `Published APIs that ${verb} re-pointed to the new definition in ${stage}:`), h('ul', { 'data-impact': 'repointed' }, by('republished').map(li)));
  const gone = [...by('failed'), ...by('unpublished')];
  if (gone.length) parts.push(h('p', {}, `Published APIs that ${verb} unpublished from ${stage}:`), h('ul', { 'data-impact': 'unpublished' }, gone.map(li)));
  if (!parts.length) parts.push(h('p', { 'data-impact': 'none' }, `No API is published in ${stage} with this backend service: no published API changes.`));
  return h('div', { class: 'impact', role: 'region', 'aria-label': `Impact in ${stage}` }, h('h3', {}, dryRun ? 'Impact before commit' : 'What changed'), parts);
}

async function backendPage(id, stage = 'TEST') {
  const b = await api('GET', `/backends/${enc(id)}`);
  const [published, drafts] = await Promise.all([
    api('GET', `/backends/${enc(id)}/apis?stage=${stage}`),
    api('GET', `/backends/${enc(id)}/apis`),
  ]);
  const def = b.stages?.[stage];
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Environments' },
    STAGES.map((s) => h('button', {
      type: 'button', role: 'tab', id: `tab-${s}`, 'aria-selected': String(s === stage), 'aria-controls': 'stage-panel',
      tabindex: s === stage ? '0' : '-1', onclick: () => { location.hash = `#/backends/${id}/${s}`; },
    }, s, b.stages?.[s] ? '' : ' (none)')));
  tabs.addEventListener('keydown', (e) => {
    const i = STAGES.indexOf(stage);
    const next = e.key === 'ArrowRight' ? (i + 1) % 3 : e.key === 'ArrowLeft' ? (i + 2) % 3 : -1;
    if (next >= 0) {
      e.preventDefault();
      pendingFocus = '[role="tab"][aria-selected="true"]';
      location.hash = `#/backends/${id}/${STAGES[next]}`;
    }
  });
  const defView = def
    ? h('dl', { class: 'kv' }, Object.entries(def).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))]))
    : empty(`No definition in ${stage}: APIs cannot be published to ${stage} with this service until it has one.`);
  const actions = def
    ? h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', onclick: () => editDefinition(b, stage, def) }, `Edit ${stage} definition`),
      h('button', { type: 'button', class: 'danger', onclick: () => deleteDefinition(b, stage) }, `Delete ${stage} definition`))
    : h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', onclick: () => editDefinition(b, stage, null) }, `Create ${stage} definition`));
  return [
    h('p', {}, h('a', { href: '#/backends' }, '← Backend Services')),
    h('h1', {}, b.name, ' ', h('span', { class: 'badge' }, KIND_LABEL[b.type] || b.type)),
    b.description ? h('p', { class: 'muted' }, b.description) : null,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => renameBackend(b) }, 'Rename'),
      h('button', { type: 'button', class: 'danger', onclick: () => deleteBackend(b) }, 'Delete backend service')),
    tabs,
    h('section', { id: 'stage-panel', role: 'tabpanel', 'aria-labelledby': `tab-${stage}` },
      h('h2', {}, `Definition in ${stage}`), defView, actions,
      h('h2', {}, `APIs published in ${stage} with this service`),
      published.length ? table([
        ['API', (a) => h('a', { href: `#/apis/${a.id}` }, a.name)],
        ['Request', (a) => `${a.request.method} ${a.request.path}`],
      ], published) : empty(`No API is published in ${stage} with this service.`),
      h('h3', {}, 'API drafts bound to this service'),
      drafts.length ? h('ul', {}, drafts.map((a) => h('li', {}, h('a', { href: `#/apis/${a.id}` }, a.name)))) : empty('None.')),
  ];
}

async function editDefinition(b, stage, current) {
  const vpcs = b.type === 'VPC' || b.type === 'MIXED' ? await api('GET', '/vpc-access') : [];
  const editing = Boolean(current);
  openDialog(`${editing ? 'Edit' : 'Create'} the ${stage} definition of ${b.name}`, (close) => {
    const holder = h('div');
    let kind = current?.type || (b.type === 'MIXED' ? 'HTTP' : b.type);
    let def = definitionFields(kind, current, vpcs);
    const draw = () => holder.replaceChildren(...def.fields);
    draw();
    const parts = [];
    if (b.type === 'MIXED') {
      const choice = h('select', { 'data-field': 'type' }, options(KINDS.filter((k) => k !== 'MIXED').map((k) => [k, KIND_LABEL[k]]), kind));
      choice.addEventListener('change', () => { kind = choice.value; def = definitionFields(kind, null, vpcs); draw(); });
      parts.push(field('Kind in this environment', choice, 'A MIXED service may use a different kind in each environment.'));
    }
    parts.push(holder);
    const path = `/backends/${enc(b.id)}/stages/${stage}`;
    const fm = form(parts, editing ? 'Review impact' : 'Create definition', async () => {
      const body = def.read();
      if (!editing) {
        const done = await api('PUT', path, body);
        close();
        toast(`${stage} definition created.`);
        render();
        return done;
      }
      const preview = await api('PUT', `${path}?dry_run=true`, body);
      const err = h('p', { class: 'error', role: 'alert' });
      const apply = h('button', { type: 'button', class: 'primary' }, 'Apply change');
      apply.addEventListener('click', async () => {
        apply.disabled = true;
        try {
          const done = await api('PUT', path, body);
          close();
          toast(`${stage} definition saved: ${done.report.length} published API(s) affected.`);
          render();
        } catch (ex) {
          if (ex.status !== 401) err.textContent = ex.message;
        } finally { apply.disabled = false; }
      });
      setDialogBody(h('p', {}, `Check what this change does before it is made. Nothing has changed yet.`),
        impactList(stage, preview.report, true),
        h('div', { class: 'actions' }, apply, h('button', { type: 'button', onclick: () => { close(); editDefinition(b, stage, current); } }, 'Back to the form'), cancelButton(close)), err);
      return preview;
    }, [cancelButton(close)]);
    return fm;
  });
}

async function deleteDefinition(b, stage) {
  const path = `/backends/${enc(b.id)}/stages/${stage}`;
  let preview;
  try {
    preview = await api('DELETE', `${path}?dry_run=true`);
  } catch (ex) {
    if (ex.status !== 401) toast(ex.message);
    return;
  }
  confirmDialog(`Delete the ${stage} definition of ${b.name}?`,
    [h('p', {}, 'Check what this deletion does before it is made. Nothing has changed yet.'), impactList(stage, preview.report, true)],
    `Delete ${stage} definition`, async (close) => {
      const done = await api('DELETE', path);
      close();
      toast(`${stage} definition deleted: ${done.report.length} API(s) unpublished.`);
      render();
    });
}

// ----- groups and APIs -----

function createGroup(after) {
  openDialog('Create group', (close) => {
    const name = field('Name', h('input', { 'data-field': 'name' }));
    const base = field('Base path', h('input', { 'data-field': 'base_path', placeholder: '/v1' }), 'Optional prefix of every API path in the group.');
    const desc = field('Description', h('textarea', { 'data-field': 'description' }));
    return form([name, base, desc], 'Create group', async () => {
      const g = await api('POST', '/groups', {
        name: name.control.value.trim(), base_path: base.control.value.trim() || undefined,
        description: desc.control.value.trim() || undefined,
      });
      close();
      toast(`Group ${g.name} created.`);
      after(g);
    }, [cancelButton(close)]);
  });
}

const hashQuery = () => new URLSearchParams(location.hash.split('?')[1] || '');

async function apisPage() {
  const groups = await api('GET', '/groups');
  const head = h('h1', {}, 'APIs');
  const newGroup = h('button', { type: 'button', onclick: () => createGroup((g) => { location.hash = `#/apis?group=${g.id}`; }) }, 'Create group');
  if (!groups.length) return [head, empty('No group yet: APIs live in a group. Create one first.', newGroup)];
  const gid = hashQuery().get('group') || groups[0].id;
  const group = groups.find((g) => g.id === gid) || groups[0];
  const sel = h('select', {}, options(groups.map((g) => [g.id, g.name]), group.id));
  sel.addEventListener('change', () => { location.hash = `#/apis?group=${sel.value}`; });
  const [apis, backends] = await Promise.all([api('GET', `/apis?group_id=${enc(group.id)}`), api('GET', '/backends')]);
  const deployments = await Promise.all(apis.map((a) => api('GET', `/apis/${enc(a.id)}/deployments`)));
  const live = new Map(apis.map((a, i) => [a.id, deployments[i].filter((d) => d.live)]));
  const bname = (id) => backends.find((b) => b.id === id)?.name || id;
  return [
    head,
    h('div', { class: 'bar' }, field('Group', sel), h('div', { class: 'field' }, h('div', { class: 'actions' }, newGroup,
      h('button', { type: 'button', class: 'primary', onclick: () => { location.hash = `#/apis/new?group=${group.id}`; } }, 'Create API')))),
    apis.length ? table([
      ['Name', (a) => h('a', { href: `#/apis/${a.id}` }, a.name)],
      ['Request', (a) => `${a.request.method} ${a.request.path}`],
      ['Backend service', (a) => bname(a.backend.backend_id)],
      ['Published', (a) => STAGES.map((s) => {
        const d = live.get(a.id).find((x) => x.stage === s);
        return badge(d ? `${s} ✓` : `${s} –`, d);
      })],
      ['Actions', (a) => h('div', { class: 'actions' },
        h('button', { type: 'button', 'aria-label': `Publish ${a.name}`, onclick: () => publishDialog(a) }, 'Publish'),
        h('a', { href: `#/apis/${a.id}/edit`, 'aria-label': `Edit ${a.name}` }, 'Edit'))],
    ], apis) : empty('No API in this group yet.'),
  ];
}

function publishDialog(a) {
  openDialog(`Publish ${a.name}`, (close) => {
    const stage = field('Environment', h('select', { 'data-field': 'stage' }, options(STAGES.map((s) => [s, s]), 'TEST')));
    const desc = field('Description', h('input', { 'data-field': 'description', placeholder: 'what this version changes' }));
    const fm = form([stage, desc], 'Publish', async () => {
      try {
        const d = await api('POST', `/apis/${enc(a.id)}/publish`, { stage: stage.control.value, description: desc.control.value.trim() || undefined });
        close();
        toast(`${a.name} published to ${d.stage} as version ${d.version}.`);
        render();
      } catch (ex) {
        if (ex.status === 401) throw ex;
        // A refusal is about the chosen environment: show it by the environment's control.
        stage.control.setAttribute('aria-invalid', 'true');
        stage.err.textContent = ex.message;
        stage.control.focus();
      }
    }, [cancelButton(close)]);
    return fm;
  });
}

async function apiPage(id) {
  const [a, deps, grants, apps, backends] = await Promise.all([
    api('GET', `/apis/${enc(id)}`), api('GET', `/apis/${enc(id)}/deployments`),
    api('GET', `/apis/${enc(id)}/authorizations`), api('GET', '/apps'), api('GET', '/backends'),
  ]);
  const appName = (x) => apps.find((p) => p.id === x)?.name || x;
  const stageRows = STAGES.map((s) => ({ s, d: deps.find((d) => d.stage === s && d.live) }));
  return [
    h('p', {}, h('a', { href: `#/apis?group=${a.group_id}` }, '← APIs')),
    h('h1', {}, a.name),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Request'), h('dd', {}, `${a.request.method} ${a.request.path}`),
      h('dt', {}, 'Authentication'), h('dd', {}, a.auth || 'APP'),
      h('dt', {}, 'Backend service'), h('dd', {}, backends.find((b) => b.id === a.backend.backend_id)?.name || a.backend.backend_id),
      h('dt', {}, 'Backend path'), h('dd', {}, a.backend.path || '(same as the request)')),
    h('div', { class: 'actions' },
      h('a', { href: `#/apis/${a.id}/edit` }, 'Edit API'),
      h('button', { type: 'button', onclick: () => publishDialog(a) }, 'Publish'),
      h('a', { href: `#/debug?api=${a.id}` }, 'Debug API')),
    h('h2', {}, 'Environments'),
    table([
      ['Environment', (r) => r.s],
      ['Published version', (r) => (r.d ? `${r.d.version}${r.d.description ? ` (${r.d.description})` : ''}` : 'not published')],
      ['Actions', (r) => (r.d ? h('button', { type: 'button', class: 'danger', onclick: () => confirmDialog(`Unpublish ${a.name} from ${r.s}?`, h('p', {}, `Callers of ${r.s} get 404 for this API until it is published again.`), 'Unpublish', async (close) => {
        await api('POST', `/apis/${enc(a.id)}/unpublish`, { stage: r.s });
        close(); toast(`${a.name} unpublished from ${r.s}.`); render();
      }) }, `Unpublish from ${r.s}`) : '')],
    ], stageRows),
    h('h2', {}, 'Version history'),
    deps.length ? table([
      ['Environment', (d) => d.stage], ['Version', (d) => d.version], ['Description', (d) => d.description || ''],
      ['Published at', (d) => fmtTime(d.deployed_at)], ['State', (d) => badge(d.live ? 'live' : 'earlier', d.live)],
      ['Actions', (d) => (d.live ? '' : h('button', { type: 'button', onclick: () => confirmDialog(`Roll ${a.name} back in ${d.stage}?`, h('p', {}, `Version ${d.version} becomes the one served in ${d.stage}.`), 'Roll back', async (close) => {
        await api('POST', `/apis/${enc(a.id)}/rollback`, { stage: d.stage, version: d.version });
        close(); toast(`Rolled back to ${d.version}.`); render();
      }, false) }, 'Roll back to this version'))],
    ], deps) : empty('Never published.'),
    h('h2', {}, 'Authorized apps'),
    grants.length ? table([
      ['App', (g) => h('a', { href: `#/apps/${g.app_id}` }, appName(g.app_id))], ['Environment', (g) => g.stage],
      ['Expires', (g) => (g.expires_at ? fmtTime(g.expires_at) : 'never')],
    ], grants) : empty('No app is authorized for this API.'),
  ];
}

function paramRow(p = {}) {
  const row = h('div', { class: 'row', role: 'group', 'aria-label': `Parameter ${p.name || ''}`.trim() });
  const c = {
    name: field('Name', h('input', { value: p.name ?? '', 'data-field': 'name' })),
    location: field('Location', h('select', {}, options(['QUERY', 'PATH', 'HEAD', 'BODY'].map((x) => [x, x]), p.location || 'QUERY'))),
    type: field('Type', h('select', {}, options(['STRING', 'INT', 'LONG', 'FLOAT', 'DOUBLE', 'BOOLEAN'].map((x) => [x, x]), p.type || 'STRING'))),
    default: field('Default', h('input', { value: p.default ?? '' })),
    min_value: field('Minimum', h('input', { value: p.min_value ?? '', inputmode: 'decimal' })),
    max_value: field('Maximum', h('input', { value: p.max_value ?? '', inputmode: 'decimal' })),
    max_length: field('Max length', h('input', { value: p.max_length ?? '', inputmode: 'numeric' })),
    enum_values: field('Allowed values (comma-separated)', h('input', { value: (p.enum_values || []).join(',') })),
    regex: field('Pattern (regex)', h('input', { value: p.regex ?? '' })),
    demo_value: field('Demo value', h('input', { value: p.demo_value ?? '' })),
  };
  const req = checkbox('Required', p.required);
  const remove = h('button', { type: 'button', class: 'danger', onclick: () => row.remove() }, 'Remove parameter');
  row.append(...Object.values(c), req, h('div', { class: 'field' }, remove));
  row.read = () => {
    const v = (k) => c[k].control.value.trim();
    const out = { ...p, name: v('name'), location: v('location'), type: v('type'), required: req.control.checked };
    for (const k of ['default', 'regex', 'demo_value']) { if (v(k)) out[k] = v(k); else delete out[k]; }
    for (const k of ['min_value', 'max_value', 'max_length']) { if (v(k)) out[k] = Number(v(k)); else delete out[k]; }
    out.enum_values = v('enum_values') ? v('enum_values').split(',').map((s) => s.trim()).filter(Boolean) : [];
    return out;
  };
  return row;
}

async function apiEditPage(id) {
  const creating = !id;
  const [groups, backends, current] = await Promise.all([
    api('GET', '/groups'), api('GET', '/backends'), creating ? null : api('GET', `/apis/${enc(id)}`),
  ]);
  if (!groups.length) return [h('h1', {}, 'Create API'), empty('Create a group first.', h('a', { href: '#/apis' }, 'Go to APIs'))];
  if (!backends.length) return [h('h1', {}, 'Create API'), empty('Create a backend service first: an API calls one.', h('a', { href: '#/backends' }, 'Go to Backend Services'))];
  const a = current || {
    group_id: hashQuery().get('group') || groups[0].id, auth: 'APP',
    request: { method: 'GET', path: '/', mode: 'PASSTHROUGH' }, backend: { backend_id: backends[0].id }, response: {},
  };
  const f = {
    name: field('Name', h('input', { 'data-field': 'name', value: a.name ?? '' })),
    description: field('Description', h('textarea', { 'data-field': 'description', value: a.description ?? '' })),
    group: field('Group', h('select', { 'data-field': 'group_id', disabled: !creating }, options(groups.map((g) => [g.id, g.name]), a.group_id))),
    auth: field('Authentication', h('select', { 'data-field': 'auth' }, options([['APP', 'App (signature or AppCode)'], ['ANONYMOUS', 'Anonymous']], a.auth || 'APP'))),
    method: field('Method', h('select', { 'data-field': 'method' }, options(METHODS.map((m) => [m, m]), a.request.method))),
    path: field('Path', h('input', { 'data-field': 'path', value: a.request.path }), 'Literal segments and [param] segments, e.g. /users/[id].'),
    mode: field('Parameter handling', h('select', { 'data-field': 'mode' }, options([['PASSTHROUGH', 'Pass through'], ['MAPPING', 'Map declared parameters'], ['MAPPING_PASSTHROUGH', 'Map, and pass the rest through']], a.request.mode || 'PASSTHROUGH'))),
    backend: field('Backend service', h('select', { 'data-field': 'backend_id' }, options(backends.map((b) => [b.id, `${b.name} (${KIND_LABEL[b.type] || b.type})`]), a.backend.backend_id))),
    bpath: field('Backend path', h('input', { 'data-field': 'backend.path', value: a.backend.path ?? '' }), 'Empty: the request path.'),
    bmethod: field('Backend method', h('select', {}, options([['', 'Same as the request'], ...METHODS.filter((m) => m !== 'ANY').map((m) => [m, m])], a.backend.method || ''))),
    btimeout: field('Backend timeout (ms)', h('input', { 'data-field': 'timeout_ms', inputmode: 'numeric', value: a.backend.timeout_ms ?? '' })),
    ctype: field('Response content type', h('input', { value: a.response?.content_type ?? '' })),
    example: field('Response example', h('textarea', { value: a.response?.example ?? '' })),
    errExample: field('Error response example', h('textarea', { value: a.response?.error_example ?? '' })),
  };
  const params = h('div', { class: 'params' }, (a.parameters || []).map((p) => paramRow(p)));
  const addParam = h('button', { type: 'button', onclick: () => { const r = paramRow(); params.append(r); r.querySelector('input').focus(); } }, 'Add parameter');
  const fm = form([
    h('fieldset', {}, h('legend', {}, 'Basics'), h('div', { class: 'grid2' }, f.name, f.group, f.auth), f.description),
    h('fieldset', {}, h('legend', {}, 'Request'), h('div', { class: 'grid2' }, f.method, f.path, f.mode)),
    h('fieldset', {}, h('legend', {}, 'Parameters'), params, addParam),
    h('fieldset', {}, h('legend', {}, 'Backend'), h('div', { class: 'grid2' }, f.backend, f.bpath, f.bmethod, f.btimeout)),
    h('fieldset', {}, h('legend', {}, 'Response documentation'), f.ctype, h('div', { class: 'grid2' }, f.example, f.errExample)),
  ], creating ? 'Create API' : 'Save API', async () => {
    const v = (x) => x.control.value.trim();
    const body = {
      ...a, name: v(f.name), group_id: v(f.group), auth: v(f.auth),
      request: { ...a.request, method: v(f.method), path: v(f.path), mode: v(f.mode) },
      backend: { ...a.backend, backend_id: v(f.backend) },
      parameters: [...params.children].map((r) => r.read()),
      response: { ...(a.response || {}) },
    };
    if (v(f.description)) body.description = v(f.description); else delete body.description;
    for (const [k, x] of [['path', f.bpath], ['method', f.bmethod]]) { if (v(x)) body.backend[k] = v(x); else delete body.backend[k]; }
    if (v(f.btimeout)) body.backend.timeout_ms = Number(v(f.btimeout)); else delete body.backend.timeout_ms;
    for (const [k, x] of [['content_type', f.ctype], ['example', f.example], ['error_example', f.errExample]]) {
      if (v(x)) body.response[k] = x.control.value; else delete body.response[k];
    }
    const saved = creating ? await api('POST', '/apis', body) : await api('PUT', `/apis/${enc(id)}`, body);
    toast(`API ${saved.name} saved. Publish it to an environment to serve it.`);
    location.hash = `#/apis/${saved.id}`;
  }, [h('a', { href: creating ? '#/apis' : `#/apis/${id}` }, 'Cancel')]);
  return [h('h1', {}, creating ? 'Create API' : `Edit ${a.name}`), fm];
}

// ----- Apps -----

async function appsPage() {
  const apps = await api('GET', '/apps');
  return [
    h('h1', {}, 'Apps'),
    h('div', { class: 'bar' }, h('button', { type: 'button', class: 'primary', onclick: createApp }, 'Create app')),
    apps.length ? table([
      ['Name', (p) => h('a', { href: `#/apps/${p.id}` }, p.name)], ['AppKey', (p) => p.app_key || ''],
      ['Description', (p) => p.description || ''], ['Created', (p) => fmtTime(p.created_at)],
    ], apps) : empty('No app yet: an app holds the credentials callers sign with.'),
  ];
}

function createApp() {
  openDialog('Create app', (close) => {
    const name = field('Name', h('input', { 'data-field': 'name' }));
    const desc = field('Description', h('textarea', { 'data-field': 'description' }));
    return form([name, desc], 'Create app', async () => {
      const p = await api('POST', '/apps', { name: name.control.value.trim(), description: desc.control.value.trim() || undefined });
      close();
      toast(`App ${p.name} created.`);
      location.hash = `#/apps/${p.id}`;
    }, [cancelButton(close)]);
  });
}

/** A secret shown as dots until revealed, with a copy button. */
function secretView(label, value) {
  const out = h('span', { class: 'secret', 'aria-label': `${label} (hidden)` }, '••••••••••••');
  const reveal = h('button', { type: 'button', 'aria-pressed': 'false' }, `Reveal ${label}`);
  reveal.addEventListener('click', () => {
    const shown = reveal.getAttribute('aria-pressed') !== 'true';
    reveal.setAttribute('aria-pressed', String(shown));
    reveal.textContent = `${shown ? 'Hide' : 'Reveal'} ${label}`;
    out.textContent = shown ? value : '••••••••••••';
    out.setAttribute('aria-label', shown ? label : `${label} (hidden)`);
  });
  const copy = h('button', { type: 'button' }, `Copy ${label}`);
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(value); toast(`${label} copied.`); } catch { toast(`Copying was refused by the browser: reveal ${label} and select it.`); }
  });
  return h('div', { class: 'actions' }, out, reveal, copy);
}

async function appPage(id) {
  const [p, grants, apis] = await Promise.all([api('GET', `/apps/${enc(id)}`), api('GET', `/apps/${enc(id)}/authorizations`), api('GET', '/apis')]);
  const apiName = (x) => apis.find((a) => a.id === x)?.name || x;
  return [
    h('p', {}, h('a', { href: '#/apps' }, '← Apps')),
    h('h1', {}, p.name),
    p.description ? h('p', { class: 'muted' }, p.description) : null,
    h('h2', {}, 'Credentials'),
    (p.keys || []).map((k) => h('div', { class: 'card' },
      h('dl', { class: 'kv' }, h('dt', {}, 'AppKey'), h('dd', {}, k.app_key), h('dt', {}, 'AppSecret'), h('dd', {}, secretView('AppSecret', k.app_secret))),
      h('button', { type: 'button', onclick: () => confirmDialog(`Rotate the AppSecret of ${k.app_key}?`, h('p', {}, 'Callers signing with the current secret are refused from now on.'), 'Rotate secret', async (close) => {
        await api('POST', `/apps/${enc(p.id)}/keys/${enc(k.app_key)}/rotate`, {});
        close(); toast('AppSecret rotated.'); render();
      }) }, 'Rotate AppSecret'))),
    (p.codes || []).map((c) => h('div', { class: 'card' }, h('dl', { class: 'kv' }, h('dt', {}, 'AppCode'), h('dd', {}, secretView('AppCode', c))))),
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: async () => { try { await api('POST', `/apps/${enc(p.id)}/keys`, {}); toast('Key pair added.'); render(); } catch (e) { if (e.status !== 401) toast(e.message); } } }, 'Add key pair'),
      h('button', { type: 'button', onclick: async () => { try { await api('POST', `/apps/${enc(p.id)}/codes`, {}); toast('AppCode added.'); render(); } catch (e) { if (e.status !== 401) toast(e.message); } } }, 'Add AppCode')),
    h('h2', {}, 'Authorized APIs'),
    h('div', { class: 'bar' }, h('button', { type: 'button', class: 'primary', onclick: () => authorizeDialog(p, apis) }, 'Authorize an API')),
    grants.length ? table([
      ['API', (g) => h('a', { href: `#/apis/${g.api_id}` }, apiName(g.api_id))], ['Environment', (g) => g.stage],
      ['Expires', (g) => (g.expires_at ? fmtTime(g.expires_at) : 'never')],
      ['Actions', (g) => h('button', { type: 'button', class: 'danger', onclick: () => confirmDialog(`Revoke ${apiName(g.api_id)} in ${g.stage}?`, h('p', {}, `${p.name} can no longer call it in ${g.stage}.`), 'Revoke', async (close) => {
        await api('DELETE', `/apis/${enc(g.api_id)}/authorizations/${enc(p.id)}?stage=${g.stage}`);
        close(); toast('Authorization revoked.'); render();
      }) }, 'Revoke')],
    ], grants) : empty('This app is not authorized for any API yet.'),
  ];
}

function authorizeDialog(p, apis) {
  openDialog(`Authorize ${p.name}`, (close) => {
    if (!apis.length) return [empty('No API exists yet.'), cancelButton(close)];
    const apiSel = field('API', h('select', { 'data-field': 'api_id' }, options(apis.map((a) => [a.id, `${a.name} (${a.request.method} ${a.request.path})`]), apis[0].id)));
    const stage = field('Environment', h('select', { 'data-field': 'stage' }, options(STAGES.map((s) => [s, s]), 'TEST')));
    const exp = field('Expires', h('input', { type: 'datetime-local', 'data-field': 'expires_at' }), 'Empty: never.');
    return form([apiSel, stage, exp], 'Authorize', async () => {
      const when = exp.control.value ? new Date(exp.control.value).toISOString() : undefined;
      await api('POST', `/apis/${enc(apiSel.control.value)}/authorizations`, { app_id: p.id, stage: stage.control.value, expires_at: when });
      close();
      toast('Authorized.');
      render();
    }, [cancelButton(close)]);
  });
}

// ----- Debug -----

async function debugPage() {
  const [apis, apps] = await Promise.all([api('GET', '/apis'), api('GET', '/apps')]);
  if (!apis.length) return [h('h1', {}, 'Debug API'), empty('No API yet: create and publish one first.', h('a', { href: '#/apis' }, 'Go to APIs'))];
  const chosen = apis.find((a) => a.id === hashQuery().get('api')) || apis[0];
  const apiSel = h('select', {}, options(apis.map((a) => [a.id, a.name]), chosen.id));
  apiSel.addEventListener('change', () => { location.hash = `#/debug?api=${apiSel.value}`; });
  const deps = await api('GET', `/apis/${enc(chosen.id)}/deployments`);
  const liveStages = deps.filter((d) => d.live).map((d) => d.stage);
  const stage = field('Environment', h('select', { 'data-field': 'stage' }, options(STAGES.map((s) => [s, `${s}${liveStages.includes(s) ? '' : ' (not published)'}`]), liveStages[0] || 'TEST')));
  const app = field('App', h('select', { 'data-field': 'app_id' }, options([['', 'No app (anonymous)'], ...apps.map((p) => [p.id, p.name])], apps[0]?.id || '')));
  const mode = field('Authentication', h('select', { 'data-field': 'auth' }, options([['SIGNATURE', 'Signature (AppKey and AppSecret)'], ['APPCODE', 'AppCode']], 'SIGNATURE')));
  const paramFields = (chosen.parameters || []).map((p) => {
    const f = field(`${p.name} (${p.location.toLowerCase()}${p.required ? ', required' : ''})`, h('input', { value: p.demo_value ?? p.default ?? '', 'data-field': p.name }));
    f.param = p;
    return f;
  });
  const pathParams = [...chosen.request.path.matchAll(/\[([^\]]+)\]/g)].map((m) => m[1]).filter((n) => !(chosen.parameters || []).some((p) => p.name === n && p.location === 'PATH'));
  for (const n of pathParams) {
    const f = field(`${n} (path)`, h('input', { 'data-field': n }));
    f.param = { name: n, location: 'PATH' };
    paramFields.push(f);
  }
  const query = field('More query parameters (name=value a line)', h('textarea', {}));
  const headers = field('More headers (name: value a line)', h('textarea', {}));
  const body = field('Body', h('textarea', {}));
  const result = h('section', { 'aria-live': 'polite', 'aria-label': 'Debug result' });
  const fm = form([
    h('div', { class: 'grid2' }, stage, app, mode),
    paramFields.length ? h('fieldset', {}, h('legend', {}, 'Parameters'), h('div', { class: 'grid2' }, paramFields)) : null,
    h('div', { class: 'grid2' }, query, headers), body,
  ], 'Send', async () => {
    const req = { stage: stage.control.value, auth: mode.control.value, path_params: {}, query: {}, headers: {} };
    if (app.control.value) req.app_id = app.control.value;
    const form = new URLSearchParams();
    for (const f of paramFields) {
      const v = f.control.value;
      if (v === '') continue;
      const where = { PATH: 'path_params', QUERY: 'query', HEAD: 'headers' }[f.param.location];
      if (where) req[where][f.param.name] = v; else form.append(f.param.name, v);
    }
    for (const line of query.control.value.split('\n')) { const i = line.indexOf('='); if (line.trim()) req.query[(i < 0 ? line : line.slice(0, i)).trim()] = i < 0 ? '' : line.slice(i + 1).trim(); }
    for (const line of headers.control.value.split('\n')) { const i = line.indexOf(':'); if (line.trim() && i > 0) req.headers[line.slice(0, i).trim()] = line.slice(i + 1).trim(); }
    if (body.control.value) req.body = body.control.value; else if ([...form].length) req.body = form.toString();
    result.replaceChildren(h('p', { class: 'state', role: 'status' }, 'Sending…'));
    try {
      const r = await api('POST', `/apis/${enc(chosen.id)}/debug`, req);
      result.replaceChildren(...debugResult(r));
    } catch (ex) {
      result.replaceChildren();
      throw ex;
    }
  });
  return [h('h1', {}, 'Debug API'), h('div', { class: 'bar' }, field('API', apiSel)),
    h('p', { class: 'muted' }, `${chosen.request.method} ${chosen.request.path} · published in ${liveStages.join(', ') || 'no environment'}`), fm, result];
}

const headerText = (hs) => Object.entries(hs || {}).map(([k, v]) => `${k}: ${v}`).join('\n');

function debugResult(r) {
  const q = r.request.query ? `?${r.request.query}` : '';
  return [
    h('h2', {}, 'Response'),
    h('p', {}, 'Status ', h('strong', { 'data-debug': 'status' }, String(r.response.status)), ` · ${r.latency_ms} ms`),
    h('h3', {}, 'Response headers'), h('pre', {}, headerText(r.response.headers)),
    h('h3', {}, 'Response body'), h('pre', { 'data-debug': 'body' }, r.response.body || '(empty)'),
    h('h2', {}, 'Request as sent'),
    h('pre', { 'data-debug': 'request' }, `${r.request.method} ${r.request.path}${q}\n${headerText(r.request.headers)}${r.request.body ? `\n\n${r.request.body}` : ''}`),
    h('h3', {}, 'String to sign'), h('pre', { 'data-debug': 'string-to-sign' }, r.string_to_sign ?? '(not signed)'),
    h('h2', {}, 'Gateway trace'),
    h('ol', {}, (r.trace || []).map((t) => h('li', {}, h('strong', {}, t.step), ': ',
      t.detail ?? JSON.stringify(Object.fromEntries(Object.entries(t).filter(([k]) => k !== 'step')))))),
  ];
}

// ----- Docs -----

async function docsPage() {
  const groups = await api('GET', '/groups');
  if (!groups.length) return [h('h1', {}, 'API documentation'), empty('No group yet.')];
  const q = hashQuery();
  const group = groups.find((g) => g.id === q.get('group')) || groups[0];
  const stage = STAGES.includes(q.get('stage')) ? q.get('stage') : 'TEST';
  const gsel = h('select', {}, options(groups.map((g) => [g.id, g.name]), group.id));
  const ssel = h('select', {}, options(STAGES.map((s) => [s, s]), stage));
  const go = () => { location.hash = `#/docs?group=${gsel.value}&stage=${ssel.value}`; };
  gsel.addEventListener('change', go);
  ssel.addEventListener('change', go);
  const doc = await api('GET', `/groups/${enc(group.id)}/openapi?stage=${stage}`);
  const download = h('button', { type: 'button' }, 'Download OpenAPI JSON');
  download.addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }));
    const a = h('a', { href: url, download: `${group.name}-${stage}-openapi.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  const ops = Object.entries(doc.paths || {}).flatMap(([path, item]) => Object.entries(item)
    .filter(([m]) => ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'].includes(m))
    .map(([m, op]) => ({ path, m, op })));
  return [
    h('h1', {}, 'API documentation'),
    h('div', { class: 'bar' }, field('Group', gsel), field('Environment', ssel), h('div', { class: 'field' }, download)),
    h('p', { class: 'muted' }, `${doc.info?.title || group.name} · OpenAPI ${doc.openapi} · ${(doc.servers || []).map((s) => s.url).join(', ')}`),
    ops.length ? ops.map(({ path, m, op }) => h('article', { class: 'card' },
      h('h2', {}, `${m.toUpperCase()} ${path}`),
      op.summary || op.description ? h('p', {}, op.summary || op.description) : null,
      (op.parameters || []).length ? table([
        ['Parameter', (p) => p.name], ['In', (p) => p.in], ['Required', (p) => (p.required ? 'yes' : 'no')],
        ['Type', (p) => p.schema?.type || ''], ['Rules', (p) => [p.schema?.enum ? `one of ${p.schema.enum.join(', ')}` : '', p.schema?.pattern ? `matches ${p.schema.pattern}` : '', p.schema?.minimum != null ? `≥ ${p.schema.minimum}` : '', p.schema?.maximum != null ? `≤ ${p.schema.maximum}` : '', p.schema?.maxLength != null ? `at most ${p.schema.maxLength} chars` : ''].filter(Boolean).join('; ')],
      ], op.parameters) : h('p', { class: 'muted' }, 'No parameters.'),
      h('h3', {}, 'Responses'),
      h('ul', {}, Object.entries(op.responses || {}).map(([code, r]) => h('li', {}, h('strong', {}, code), ` ${r.description || ''}`))))) : empty(`No API of ${group.name} is published in ${stage}.`),
    h('details', {}, h('summary', {}, 'The OpenAPI document as JSON'), h('pre', {}, JSON.stringify(doc, null, 2))),
  ];
}

// ----- navigation -----

const ROUTES = [
  [/^#\/backends$/, backendsPage],
  [/^#\/backends\/([^/?]+)(?:\/(TEST|PRE|RELEASE))?$/, backendPage],
  [/^#\/apis$/, apisPage],
  [/^#\/apis\/new$/, () => apiEditPage(null)],
  [/^#\/apis\/([^/?]+)\/edit$/, apiEditPage],
  [/^#\/apis\/([^/?]+)$/, apiPage],
  [/^#\/apps$/, appsPage],
  [/^#\/apps\/([^/?]+)$/, appPage],
  [/^#\/debug$/, debugPage],
  [/^#\/docs$/, docsPage],
];

async function render() {
  const gen = ++renderGen;
  const main = $('#main');
  const nav = $('#nav');
  nav.hidden = !token;
  $('#signout').hidden = !token;
  if (!token) {
    main.replaceChildren(signInPage());
    main.querySelector('input')?.focus();
    return;
  }
  const hash = location.hash || '#/backends';
  const bare = hash.split('?')[0];
  for (const a of nav.querySelectorAll('a')) {
    if (bare.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const hit = ROUTES.map(([re, page]) => [re.exec(bare), page]).find(([m]) => m);
  if (!hit) {
    main.replaceChildren(h('h1', {}, 'Not found'), empty('No console page has this address.', h('a', { href: '#/backends' }, 'Go to Backend Services')));
    return;
  }
  const [m, page] = hit;
  const keep = main.contains(document.activeElement) ? null : document.activeElement;
  main.replaceChildren(h('p', { class: 'state', role: 'status' }, 'Loading…'));
  try {
    const nodes = await page(...m.slice(1).map((x) => (x === undefined ? undefined : decodeURIComponent(x))));
    if (gen !== renderGen) return;
    main.replaceChildren(...[nodes].flat(Infinity).filter(Boolean));
    document.title = `${main.querySelector('h1')?.textContent || 'Console'} · stagegate`;
  } catch (ex) {
    if (gen !== renderGen || ex.status === 401) return;
    const retry = h('button', { type: 'button', onclick: render }, 'Retry');
    main.replaceChildren(h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, ex.message || String(ex)), retry);
  }
  if (pendingFocus) {
    main.querySelector(pendingFocus)?.focus();
    pendingFocus = null;
  } else if (keep && keep !== document.body && document.contains(keep)) keep.focus();
}

// After moving to another page, focus its heading so that keyboard and screen-reader users
// start there (unless a dialog is open or a control asked for the focus).
window.addEventListener('hashchange', () => {
  const focusHeading = !pendingFocus;
  render().then(() => {
    const heading = $('#main').querySelector('h1');
    if (focusHeading && heading && !$('#dialog').open) {
      heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
  });
});
$('#signout').addEventListener('click', () => signOut('Signed out.'));
// A notice belongs to the change that made it: moving on to another page a moment later
// clears it (a notice made just before the move, such as "created", stays).
window.addEventListener('hashchange', () => {
  if (Date.now() - (toast.at || 0) > 1500) $('#toast').textContent = '';
});
window.addEventListener('unhandledrejection', (e) => { toast(e.reason?.message || 'Something went wrong.'); });
render();
