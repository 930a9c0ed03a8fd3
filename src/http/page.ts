// The status page's files, served by status-page.ts at `/`, `/page.js` and `/page.css`: plain HTML, CSS and a
// script with no dependency, so that nothing is built or fetched from elsewhere. Loaded on the first request for
// the page. The script reads only JSON routes of this server (with the token it asked for, kept in
// sessionStorage: this tab only) and follows GET /v1/events?problems=true through fetch (EventSource cannot send
// the Authorization header). Every text from the server goes into the page as text, never as markup.

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hotconf status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/page.css">
<script src="/page.js" defer></script>
</head>
<body>
<header>
  <h1>hotconf</h1>
  <span id="live" class="badge">connecting…</span>
</header>
<form id="login" hidden>
  <p>This hotconf asks for its bearer token. It is kept for this tab only.</p>
  <label>Token <input id="token" type="password" autocomplete="off" required></label>
  <button type="submit">Open</button>
  <p id="login-error" class="refused" role="alert"></p>
</form>
<main id="main" hidden>
  <section id="summary">
    <dl>
      <dt>Version</dt><dd id="version">–</dd>
      <dt>Source</dt><dd id="source">–</dd>
      <dt>Revision</dt><dd id="revision">–</dd>
      <dt>Release</dt><dd id="release">–</dd>
      <dt>Started</dt><dd id="started">–</dd>
      <dt>Refused</dt><dd id="error-count">–</dd>
    </dl>
  </section>
  <section id="errors-section" hidden>
    <h2>Refused configs</h2>
    <div id="errors"></div>
  </section>
  <section>
    <h2>Configs</h2>
    <table id="configs">
      <thead><tr><th>Config</th><th>State</th><th>Hash</th><th>Version</th><th>Last changed</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Recent versions</h2>
    <ol id="versions" reversed></ol>
  </section>
  <section id="notify-section" hidden>
    <h2>Notify targets</h2>
    <table id="notify">
      <thead><tr><th>Target</th><th>Last result</th><th>When</th><th>Detail</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="fleet-section" hidden>
    <h2>Fleet</h2>
    <p id="fleet-releases"></p>
    <table id="fleet">
      <thead><tr><th>Instance</th><th>Release</th><th>Target</th><th>State</th><th>Errors</th><th>Last seen</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
</body>
</html>
`;

export const PAGE_CSS = `
:root { color-scheme: light dark; --ok: #1a7f37; --error: #cf222e; --pending: #9a6700; --deleted: #6e7781; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 0 1rem 2rem; }
header { display: flex; align-items: baseline; gap: 1rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.4rem; margin: .6rem 0; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
.badge { border-radius: 1rem; padding: 0 .6rem; border: 1px solid var(--line); font-size: .85rem; }
.badge.live { color: var(--ok); border-color: var(--ok); }
.badge.down { color: var(--error); border-color: var(--error); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: .8rem 0; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
code, pre, .hash { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
.state { font-weight: 600; }
.state-ok { color: var(--ok); }
.state-error, .refused { color: var(--error); }
.state-pending { color: var(--pending); }
.state-deleted { color: var(--deleted); }
.config-error { border: 1px solid var(--error); border-radius: .4rem; padding: .4rem .8rem; margin: .5rem 0; }
.config-error h3 { font-size: 1rem; margin: .2rem 0; }
.error-line { margin: .2rem 0; overflow-wrap: anywhere; }
pre.excerpt { margin: .3rem 0 .6rem; padding: .3rem 0; border: 1px solid var(--line); border-radius: .3rem; overflow-x: auto; }
pre.excerpt span { display: block; padding: 0 .6rem; white-space: pre; }
pre.excerpt span.at { background: rgba(207, 34, 46, .15); }
pre.excerpt .no { display: inline-block; min-width: 3ch; margin-right: 1ch; text-align: right; opacity: .6; user-select: none; }
.withheld { font-style: italic; opacity: .8; }
#versions { padding-left: 2.5rem; }
#versions li { margin: .3rem 0; }
.diff { margin: .1rem 0 0; padding-left: 1rem; list-style: none; }
.diff li { margin: 0; }
.op-add { color: var(--ok); }
.op-remove { color: var(--error); }
.op-replace { color: var(--pending); }
.muted { opacity: .7; }
form#login { margin: 2rem 0; }
form#login input { font: inherit; padding: .2rem .4rem; }
`;

export const PAGE_JS = String.raw`'use strict';
(function () {
  var TOKEN_KEY = 'hotconf.token';
  var token = sessionStorage.getItem(TOKEN_KEY);
  var lastEventId = null;
  var stream = null;
  var refreshing = null;
  var again = false;
  var fleetShown = false;

  function $(id) { return document.getElementById(id); }

  /** An element with attributes and children; strings become text nodes, never markup. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
    return node;
  }

  function replace(node, children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    children.forEach(function (c) { node.appendChild(c); });
  }

  function when(ms) {
    if (typeof ms !== 'number') return '–';
    var d = new Date(ms);
    var ago = Math.max(0, Math.round((Date.now() - ms) / 1000));
    var rel = ago < 60 ? ago + ' s ago' : ago < 3600 ? Math.round(ago / 60) + ' min ago' : ago < 86400 ? Math.round(ago / 3600) + ' h ago' : Math.round(ago / 86400) + ' d ago';
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') + ' (' + rel + ')';
  }

  function Unauthorized() { this.name = 'Unauthorized'; }

  function authHeaders(extra) {
    var h = Object.assign({ Accept: 'application/json' }, extra || {});
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  /** GET a JSON route: its body, null for a 404, Unauthorized for a 401. */
  async function api(path) {
    var res = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    if (res.status === 401) throw new Unauthorized();
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
    return res.json();
  }

  function showLogin(message) {
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    setLive('locked', 'down');
    $('token').focus();
  }

  function setLive(text, cls) {
    var b = $('live');
    b.textContent = text;
    b.className = 'badge' + (cls ? ' ' + cls : '');
  }

  // ---- rendering ----------------------------------------------------------------------------------------

  function renderSummary(status) {
    $('version').textContent = String(status.version) + ' (epoch ' + status.epoch + ')';
    var src = status.source || {};
    // Whatever the source: its kind, then where (a directory, a prefix on endpoints) as it reports it.
    var where = String(src.kind || '–') + (src.configDir ? ' ' + src.configDir : '') + (src.prefix ? ' ' + src.prefix : '') + (Array.isArray(src.endpoints) ? ' at ' + src.endpoints.join(', ') : '');
    if (src.connected === false) where += ' (disconnected' + (src.lastError ? ': ' + src.lastError : '') + ')';
    $('source').textContent = where;
    $('revision').textContent = status.sourceRevision || src.revision || '–';
    var release = status.release !== undefined && status.release !== null ? status.release : src.release;
    $('release').textContent = release !== undefined && release !== null ? String(release) + (status.stale && status.stale.since ? ' (stale: etcd unreachable, served from the cache since ' + status.stale.since + ')' : '') : '–';
    $('started').textContent = when(status.startedAt);
    $('error-count').textContent = String(status.errors);
  }

  function renderConfigs(status, changedAt) {
    var rows = status.configs.map(function (c) {
      var at = c.version !== undefined && changedAt[c.version] !== undefined ? changedAt[c.version] : c.since;
      return el('tr', { 'data-config': c.name, 'data-state': c.state }, [
        el('td', {}, [el('code', {}, [c.name])]),
        el('td', { class: 'state state-' + c.state }, [c.state, c.heldBy ? el('span', { class: 'muted' }, [' (held by ' + c.heldBy.join(', ') + ')']) : null]),
        el('td', { class: 'hash', title: c.hash || '' }, [c.hash ? c.hash.slice(0, 12) : '–']),
        el('td', {}, [c.version === undefined ? '–' : String(c.version)]),
        el('td', {}, [when(at)]),
      ]);
    });
    replace(document.querySelector('#configs tbody'), rows);
  }

  function errorLine(e) {
    var pos = e.file + (e.line !== undefined && e.line !== null ? ':' + e.line + (e.col ? ':' + e.col : '') : '');
    var detail = e.message;
    // The message starts with the position; the pointer and the bare problem follow it.
    if (detail.indexOf(pos) === 0) detail = detail.slice(pos.length).replace(/^:\s*/, '');
    var ptr = e.pointer !== undefined && e.pointer !== null && detail.indexOf(e.pointer) !== 0 ? (e.pointer || '/') + ': ' : '';
    return pos + ': ' + ptr + detail;
  }

  function renderErrors(errors) {
    var blocks = errors.configs.map(function (c) {
      var lines = c.errors.map(function (e) { return el('p', { class: 'error-line refused' }, [el('code', {}, [errorLine(e)])]); });
      var shown = [];
      if (c.withheld) shown.push(el('p', { class: 'withheld' }, ['Source lines not shown: ' + c.withheld]));
      (c.excerpts || []).forEach(function (x) {
        var at = {};
        c.errors.forEach(function (e) { if (typeof e.line === 'number') at[e.line] = true; });
        shown.push(el('pre', { class: 'excerpt' }, x.lines.map(function (text, i) {
          var no = x.line + i;
          return el('span', at[no] ? { class: 'at' } : {}, [el('span', { class: 'no' }, [String(no)]), text]);
        })));
      });
      return el('div', { class: 'config-error', 'data-config': c.name }, [
        el('h3', {}, [el('code', {}, [c.name]), el('span', { class: 'muted' }, [' refused ' + when(c.since) + ' — the last good value stays live'])]),
      ].concat(lines, shown));
    });
    $('errors-section').hidden = blocks.length === 0;
    replace($('errors'), blocks);
  }

  function renderHistory(history) {
    var items = history.versions.map(function (v) {
      var parts = v.configs.map(function (c) {
        var head = el('div', {}, [el('code', {}, [c.name]), ' ' + c.kind + (c.hash ? ' → ' + c.hash.slice(0, 12) : '')]);
        var diff = el('ul', { class: 'diff' }, c.changes.map(function (d) {
          var text = d.op === 'add' ? '+ ' + (d.pointer || '/') + ': ' + d.to : d.op === 'remove' ? '- ' + (d.pointer || '/') + ': ' + d.from : '~ ' + (d.pointer || '/') + ': ' + d.from + ' → ' + d.to;
          return el('li', { class: 'op-' + d.op }, [el('code', {}, [text])]);
        }).concat(c.truncated ? [el('li', { class: 'muted' }, ['… more changes not shown'])] : []));
        return el('div', {}, [head, diff]);
      });
      if (v.more > 0) parts.push(el('div', { class: 'muted' }, ['and ' + v.more + ' more configs']));
      var title = 'v' + v.version + (v.from > 0 && v.from !== v.version - 1 ? ' (from v' + v.from + ')' : '') + ' · ' + when(v.at) + (v.release !== null && v.release !== undefined ? ' · release ' + v.release : '') + (v.sourceRevision ? ' · revision ' + v.sourceRevision : '');
      return el('li', { value: String(v.version), 'data-version': String(v.version) }, [el('strong', {}, [title])].concat(parts));
    });
    replace($('versions'), items);
  }

  function renderNotify(status) {
    var targets = Array.isArray(status.notify) ? status.notify : [];
    $('notify-section').hidden = targets.length === 0;
    replace(document.querySelector('#notify tbody'), targets.map(function (t) {
      var result = t.result || (t.delivering !== null && t.delivering !== undefined ? 'delivering' : '–');
      var detail = [t.reason, t.delivering !== null && t.delivering !== undefined ? 'delivering v' + t.delivering : null, t.lastOkVersion !== null && t.lastOkVersion !== undefined ? 'last ok v' + t.lastOkVersion : null].filter(Boolean).join(' · ');
      return el('tr', { 'data-target': t.kind + ' ' + t.target }, [
        el('td', {}, [t.kind + ' ', el('code', {}, [String(t.target)])]),
        el('td', { class: 'state ' + (result === 'ok' ? 'state-ok' : result === 'failed' ? 'state-error' : '') }, [String(result) + (t.version !== null && t.version !== undefined ? ' (v' + t.version + ')' : '')]),
        el('td', {}, [t.at ? when(Date.parse(t.at)) : '–']),
        el('td', {}, [detail]),
      ]);
    }));
  }

  function renderFleet(fleet) {
    fleetShown = fleet !== null;
    $('fleet-section').hidden = !fleetShown;
    if (!fleetShown) return;
    if (fleet.unreadable) {
      // Shown once known to be a fleet: etcd may be down for a while, the section says so rather than vanish.
      $('fleet-releases').textContent = 'The fleet cannot be read now: ' + fleet.unreadable;
      return;
    }
    var canary = fleet.canary ? ' · canary ' + fleet.canary.release + ' on ' + fleet.canary.ids.join(', ') + (fleet.canary.auto ? ' (automatic)' : '') : ' · no canary';
    $('fleet-releases').textContent = 'stable ' + fleet.stable + canary + ' · ' + fleet.instances.length + ' instance(s)';
    replace(document.querySelector('#fleet tbody'), fleet.instances.map(function (i) {
      var errors = Array.isArray(i.errors) ? i.errors.map(function (e) { return typeof e === 'string' ? e : errorLine(e); }).join('; ') : String(i.errors || 0);
      return el('tr', { 'data-instance': i.id, 'data-release': String(i.release) }, [
        el('td', {}, [el('code', {}, [i.id]), i.host ? el('span', { class: 'muted' }, [' ' + i.host + (i.pid ? ' pid ' + i.pid : '')]) : null]),
        el('td', {}, [i.release === null || i.release === undefined ? '–' : String(i.release), i.staleSince ? el('span', { class: 'state-pending' }, [' stale since ' + when(i.staleSince)]) : null]),
        el('td', {}, [i.target === null || i.target === undefined ? '–' : String(i.target)]),
        el('td', { class: 'state state-' + i.state }, [i.state]),
        el('td', {}, [errors]),
        el('td', {}, [when(typeof i.seenAt === 'string' ? Date.parse(i.seenAt) : i.seenAt)]),
      ]);
    }));
  }

  // ---- data ---------------------------------------------------------------------------------------------

  /** GET /v1/fleet: null when this is no fleet (404); once it was one, a failure to read it is said, not hidden. */
  function readFleet() {
    return api('/v1/fleet').catch(function (e) {
      if (e instanceof Unauthorized) throw e;
      return fleetShown ? { unreadable: e && e.message ? e.message : String(e) } : null;
    });
  }

  /** Fetches everything and renders it; concurrent calls coalesce into one more round. */
  function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async function () {
      try {
        do {
          again = false;
          var all = await Promise.all([api('/v1/status'), api('/v1/errors'), api('/v1/history?limit=20'), readFleet()]);
          var changedAt = {};
          all[2].versions.forEach(function (v) { changedAt[v.version] = v.at; });
          renderSummary(all[0]);
          renderConfigs(all[0], changedAt);
          renderErrors(all[1]);
          renderHistory(all[2]);
          renderNotify(all[0]);
          renderFleet(all[3]);
          document.body.setAttribute('data-version', String(all[0].version));
          document.body.setAttribute('data-errors', String(all[0].errors));
        } while (again);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  /** Follows /v1/events (with problems) over fetch; reconnects with Last-Event-ID; refreshes on every event. */
  async function follow() {
    if (stream) stream.abort();
    var ctl = new AbortController();
    stream = ctl;
    for (;;) {
      try {
        var headers = authHeaders({ Accept: 'text/event-stream' });
        if (lastEventId) headers['Last-Event-ID'] = lastEventId;
        var res = await fetch('/v1/events?problems=true', { headers: headers, signal: ctl.signal, cache: 'no-store' });
        if (res.status === 401) { showLogin('The token was refused.'); return; }
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        setLive('live', 'live');
        var reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        var buffer = '';
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) break;
          buffer += chunk.value.replace(/\r\n?/g, '\n');
          var end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            onEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      setLive('reconnecting…', 'down');
      await new Promise(function (r) { setTimeout(r, 2000); });
      if (ctl.signal.aborted) return;
    }
  }

  function onEvent(block) {
    var type = 'message';
    var id = null;
    block.split('\n').forEach(function (line) {
      if (line.indexOf('event:') === 0) type = line.slice(6).trim();
      else if (line.indexOf('id:') === 0) id = line.slice(3).trim();
    });
    if (id !== null) lastEventId = id;
    if (type === 'hello' || type === 'change' || type === 'reset' || type === 'problems') {
      refresh().catch(onFailure);
    }
  }

  function onFailure(e) {
    if (e instanceof Unauthorized) showLogin('The token was refused.');
    else setLive('error: ' + (e && e.message ? e.message : String(e)), 'down');
  }

  async function open() {
    try {
      await refresh();
    } catch (e) {
      if (e instanceof Unauthorized) {
        var had = token;
        token = null;
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(had ? 'The token was refused.' : '');
        return;
      }
      onFailure(e);
      return;
    }
    $('login').hidden = true;
    $('main').hidden = false;
    follow();
  }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    open();
  });

  // Relative times stay true while nothing changes.
  setInterval(function () { if (!$('main').hidden) refresh().catch(onFailure); }, 60000);
  // Other instances of a fleet change without an event here: their section is read again every few seconds.
  setInterval(function () {
    if ($('main').hidden || !fleetShown) return;
    readFleet().then(renderFleet).catch(onFailure);
  }, 5000);
  open();
})();
`;
