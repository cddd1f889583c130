/**
 * The dashboard's script, as served at /ui/app.js (raw: its backslashes are
 * the script's own). Plain browser JavaScript, no library. Every value from
 * the API reaches the page as a text node or an attribute, never as markup.
 *
 * Data: pods and ReplicaSets from the watch streams (`?watch=1`, read with
 * fetch so the token goes in a header; resumed with Last-Event-ID), nodes and
 * DNS names polled (a node's state comes from its heartbeats, which change no
 * resource), a pod's log followed with `?follow=1` and its events watched
 * while it is open.
 */
export const SCRIPT = String.raw`'use strict';
(function () {
  const TOKEN_KEY = 'kith.token';
  const NODE_TYPES = ['node.api', 'node.worker', 'node.scheduler', 'node.reaper'];
  /** How often nodes and DNS names are read again. */
  const POLL_MS = 5000;
  /** Failed connections of one stream in a row before it gives up and says so (as the CLI's -w). */
  const MAX_ATTEMPTS = 12;
  /** Starts of one pod's log follow while the pod is open (each change of the pod may start one). */
  const MAX_LOG_STARTS = 50;
  /** Characters of log kept on the page; older text is dropped. */
  const MAX_LOG_CHARS = 300000;
  const LOG_TAIL = 1000;
  /** A tab hidden this long lets its streams go (a browser keeps 6 connections per host for all its tabs) and opens them again when shown. */
  const PAUSE_HIDDEN_MS = 10000;
  const TERMINAL = new Set(['exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead']);
  const GOOD = new Set(['running', 'healthy', 'complete', 'yes', 'exitSuccess']);
  const BAD = new Set(['dead', 'errored', 'exitFailure', 'killed', 'abandoned', 'stalled', 'no', 'unhealthy']);
  const NEUTRAL = new Set(['—', 'Normal']);

  const $ = (id) => document.getElementById(id);

  const view = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    /** The API asks for no token (--api-auth none). */
    open: false,
    session: undefined,
    pods: new Map(),
    replicasets: new Map(),
    /** By "type/name". */
    nodes: new Map(),
    dns: { domain: '', records: [], aliases: [] },
    events: new Map(),
    streams: new Map(),
    /** The open pod: { name, ctl, starts, following }. */
    pod: undefined,
    /** The session was let go while the tab was hidden. */
    paused: false,
    /** When every stream was last connected and synced. */
    liveSince: undefined,
  };

  /** A 401: the token is missing, unknown, deleted or expired. */
  class Refused extends Error {}

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (view.token) h.Authorization = 'Bearer ' + view.token;
    return h;
  }

  async function detailOf(res) {
    try {
      const p = await res.json();
      if (p && typeof p.detail === 'string') return p.detail;
    } catch (e) {
      /* not a problem detail */
    }
    return 'HTTP ' + res.status;
  }

  async function getJson(path, signal) {
    const res = await fetch(path, { headers: headers({ Accept: 'application/json' }), signal: signal, cache: 'no-store' });
    if (res.status === 401) throw new Refused(await detailOf(res));
    if (!res.ok) throw new Error(await detailOf(res));
    return res.json();
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  // ---- elements, from text only ------------------------------------------------

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const k of Object.keys(attrs || {})) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children || []) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    return e;
  }

  function stateWord(word) {
    const w = word === undefined || word === null || word === '' ? '—' : String(word);
    const tone = GOOD.has(w) ? 'good' : BAD.has(w) ? 'bad' : NEUTRAL.has(w) ? '' : 'warn';
    return el('span', { class: 'state ' + tone, text: w });
  }

  /** A detail from the API as a sentence. */
  const sentence = (d) => (/[.!?]$/.test(d) ? d : d + '.');

  const str = (v) => (v === undefined || v === null || v === '' ? '—' : String(v));

  /** Each table's rows by what they show, so a render that changes nothing touches nothing (a click in progress lands). */
  const shown = new Map();

  /** Fills a table's body: one row per item, each cell labelled with its column's heading (the phone's card layout shows it). */
  function fillTable(id, items, cells, rowAttrs) {
    const table = $(id);
    const labels = Array.from(table.tHead.rows[0].cells).map((c) => c.textContent);
    const body = table.tBodies[0];
    const before = shown.get(id) || new Map();
    const now = new Map();
    const rows = items.map((item) => {
      const tr = el('tr', rowAttrs ? rowAttrs(item) : {});
      cells(item).forEach((c, i) => {
        const td = el('td', { 'data-label': labels[i] || '' });
        if (c && typeof c === 'object' && c.num !== undefined) {
          td.className = 'num';
          td.textContent = str(c.num);
        } else {
          td.append(typeof c === 'string' ? document.createTextNode(c) : c);
        }
        tr.append(td);
      });
      // The row's own markup, as made above from text nodes, is its identity.
      const key = tr.outerHTML;
      const same = before.get(key);
      before.delete(key);
      const row = same || tr;
      now.set(key, row);
      return row;
    });
    shown.set(id, now);
    const current = Array.from(body.children);
    if (current.length !== rows.length || rows.some((r, i) => current[i] !== r)) {
      // A focused pod button whose row changed is focused again in its new row.
      const focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.getAttribute('data-open-pod') : null;
      body.replaceChildren(...rows);
      if (focused && !body.contains(document.activeElement)) {
        const again = Array.from(body.querySelectorAll('[data-open-pod]')).find((b) => b.getAttribute('data-open-pod') === focused);
        if (again) again.focus();
      }
    }
    $(id + '-empty').hidden = items.length > 0;
    table.hidden = items.length === 0;
    $(id + '-count').textContent = '(' + items.length + ')';
  }

  const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  // ---- status line ---------------------------------------------------------------

  function setStatus(text, error) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', !!error);
  }

  function liveStatus() {
    const lost = Array.from(view.streams.entries()).filter((e) => e[1] !== 'live');
    if (lost.length > 0) {
      const gone = lost.find((e) => e[1].startsWith('lost'));
      if (gone) setStatus('Lost the ' + gone[0] + ' stream (' + gone[1].slice(6) + '). Reload the page to try again.', true);
      else setStatus('Connecting: ' + lost.map((e) => e[0]).join(', ') + '…');
      return;
    }
    if (!view.liveSince) view.liveSince = new Date().toLocaleTimeString();
    setStatus((view.open ? 'Open API (no token). ' : '') + 'Live since ' + view.liveSince + '.');
  }

  // ---- server-sent events over fetch ---------------------------------------------

  /** The text/event-stream format: events split on blank lines; comments (heartbeats) skipped. */
  function sseReader() {
    let buf = '';
    let event = '';
    let data = [];
    let id;
    return function push(text) {
      buf += text;
      const out = [];
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        if (line === '') {
          if (data.length > 0 || id !== undefined) out.push({ event: event || 'message', data: data.join('\n'), id: id });
          event = '';
          data = [];
          id = undefined;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      }
      return out;
    };
  }

  /**
   * Follows GET /resources/<type>?watch=1 into a map by name until the signal
   * ends it: a dropped stream is opened again with Last-Event-ID (the changes
   * it missed, no list), at most MAX_ATTEMPTS times in a row.
   */
  async function watch(type, into, signal, onChange) {
    let last;
    let failures = 0;
    let reason = '';
    while (!signal.aborted && failures < MAX_ATTEMPTS) {
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (last !== undefined) h['Last-Event-ID'] = last;
        const res = await fetch('/resources/' + encodeURIComponent(type) + '?watch=1', { headers: h, signal: signal, cache: 'no-store' });
        if (res.status === 401) return refused(await detailOf(res));
        if (!res.ok || !res.body) throw new Error(await detailOf(res));
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const push = sseReader();
        // Until the server ends the stream or the signal does.
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          for (const ev of push(chunk.value)) {
            failures = 0;
            if (ev.id !== undefined) last = ev.id;
            if (ev.event === 'synced') {
              view.streams.set(type, 'live');
              liveStatus();
            } else if (applyEvent(into, ev)) {
              onChange();
            }
          }
        }
        reason = 'the API ended it';
      } catch (e) {
        if (signal.aborted) return;
        reason = e instanceof Error ? e.message : String(e);
      }
      failures++;
      view.streams.set(type, 'reconnecting');
      view.liveSince = undefined;
      liveStatus();
      await sleep(Math.min(8000, 250 * Math.pow(2, failures)), signal);
    }
    if (signal.aborted) return;
    view.streams.set(type, 'lost: ' + reason);
    liveStatus();
  }

  /** One put, delete or reset applied to a map; whether it changed anything. */
  function applyEvent(into, ev) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch (e) {
      return false;
    }
    if (ev.event === 'reset') {
      into.clear();
      return true;
    }
    if (!data || typeof data.name !== 'string') return false;
    if (ev.event === 'put') into.set(data.name, data);
    else if (ev.event === 'delete') into.delete(data.name);
    else return false;
    return true;
  }

  // ---- polled: nodes and DNS names -----------------------------------------------

  async function readNodes(signal) {
    const lists = await Promise.all(NODE_TYPES.map((t) => getJson('/resources/' + t, signal)));
    view.nodes = new Map();
    for (const list of lists) for (const n of list) view.nodes.set(n.type + '/' + n.name, n);
    renderNodes();
  }

  async function readDns(signal) {
    const d = await getJson('/dns_names', signal);
    view.dns = { domain: String(d.domain || ''), records: d.records || [], aliases: d.aliases || [] };
    renderDns();
    renderPods();
    renderPod();
  }

  /** Reads nodes and names now, then every POLL_MS, until the session ends. */
  async function poll(signal) {
    while (!signal.aborted) {
      try {
        await Promise.all([readNodes(signal), readDns(signal)]);
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof Refused) return refused(e.message);
        setStatus('Could not read nodes or DNS names: ' + e.message + '. Trying again.', true);
      }
      await sleep(POLL_MS, signal);
    }
  }

  let dnsSoon;
  /** A pod's address appears in DNS as it starts running: read the names shortly after a pod changes. */
  function readDnsSoon() {
    if (dnsSoon || !view.session) return;
    const signal = view.session.signal;
    dnsSoon = setTimeout(() => {
      dnsSoon = undefined;
      readDns(signal).catch((e) => { if (e instanceof Refused) refused(e.message); });
    }, 300);
  }

  // ---- rendering -----------------------------------------------------------------

  const ipOf = (pod) => {
    const name = pod + '.pod.' + view.dns.domain + '.';
    const r = view.dns.records.find((x) => x.name === name);
    return r ? r.address : '';
  };

  function readyWord(p) {
    if (p.state !== 'running') return '—';
    return p.metadata && p.metadata.ready === 'false' ? 'no' : 'yes';
  }

  function podRequest(p) {
    let cpu = 0;
    let memory = 0;
    for (const c of (p.spec && p.spec.containers) || []) {
      const r = (c.resources && c.resources.requests) || {};
      cpu += Number(r.cpu || 0);
      memory += Number(r.memory || 0);
    }
    return { cpu: cpu, memory: memory };
  }

  function renderNodes() {
    const nodes = Array.from(view.nodes.values()).sort((a, b) => byName(a, b) || (a.type < b.type ? -1 : 1));
    const live = Array.from(view.pods.values()).filter((p) => !TERMINAL.has(p.state));
    fillTable('nodes', nodes, (n) => {
      const spec = n.spec || {};
      const lim = spec.limits;
      const worker = n.type === 'node.worker';
      const mine = worker ? live.filter((p) => p.metadata && p.metadata.workedBy === n.name) : [];
      const used = mine.reduce((a, p) => { const r = podRequest(p); return { cpu: a.cpu + r.cpu, memory: a.memory + r.memory }; }, { cpu: 0, memory: 0 });
      const asked = used.cpu > 0 || used.memory > 0 ? ' (requested ' + Math.round(used.cpu * 100) / 100 + ' CPU, ' + used.memory + ' MiB)' : '';
      const capacity = lim ? lim.cpu + ' CPU, ' + lim.memory + ' MiB' + asked : '—';
      return [n.name, n.type.replace(/^node\./, ''), stateWord(n.state), str(spec.address), capacity, worker ? { num: mine.length } : '—'];
    }, (n) => ({ 'data-node': n.type + '/' + n.name }));
  }

  function renderPods() {
    const pods = Array.from(view.pods.values()).sort(byName);
    fillTable('pods', pods, (p) => {
      const md = p.metadata || {};
      const open = el('button', { type: 'button', class: 'link', 'data-open-pod': p.name, 'aria-label': 'Pod ' + p.name + ': logs and events', text: p.name });
      return [open, stateWord(p.state), stateWord(readyWord(p)), { num: md.restarts || '0' }, str(md.workedBy), str(ipOf(p.name)), str(md.replicaSet)];
    }, (p) => ({ 'data-pod': p.name, 'data-state': p.state || '' }));
  }

  function renderReplicaSets() {
    const sets = Array.from(view.replicasets.values()).sort(byName);
    fillTable('replicasets', sets, (r) => {
      const s = r.status || {};
      const desired = (r.spec && r.spec.replicas) !== undefined ? r.spec.replicas : s.desired;
      const ready = s.ready !== undefined ? s.ready : s.running;
      return [r.name, { num: desired }, str(ready === undefined ? undefined : ready + ' of ' + desired), { num: s.updated }, { num: s.available }, stateWord(s.rollout)];
    }, (r) => ({ 'data-replicaset': r.name }));
  }

  function renderDns() {
    const rows = view.dns.records.map((r) => ({ name: r.name, kind: 'A', answer: r.address }))
      .concat(view.dns.aliases.map((a) => ({ name: a.from, kind: 'alias', answer: a.to })))
      .sort((a, b) => byName(a, b) || (a.answer < b.answer ? -1 : 1));
    fillTable('dns', rows, (r) => [r.name, r.kind, r.answer], (r) => ({ 'data-dns': r.name }));
  }

  let renderSoon;
  function render() {
    if (renderSoon) return;
    renderSoon = setTimeout(() => {
      renderSoon = undefined;
      renderPods();
      renderNodes();
      renderReplicaSets();
      renderPod();
    }, 16);
  }

  // ---- one pod: facts, log, events -----------------------------------------------

  function renderPod() {
    const open = view.pod;
    if (!open) return;
    const p = view.pods.get(open.name);
    $('pod-title').textContent = 'Pod ' + open.name;
    const facts = [];
    const md = (p && p.metadata) || {};
    const containers = ((p && p.spec && p.spec.containers) || []).map((c) => c.name + ' (' + c.image + ')');
    const add = (k, v) => facts.push(el('dt', { text: k }), el('dd', {}, [v]));
    add('State', p ? stateWord(p.state) : 'deleted');
    if (p) {
      add('Ready', stateWord(readyWord(p)));
      add('Restarts', str(md.restarts || '0'));
      add('Worker', str(md.workedBy));
      add('IP', str(ipOf(open.name)));
      add('Containers', str(containers.join(', ')));
      if (md.replicaSet) add('ReplicaSet', md.replicaSet);
      if (md.error) add('Error', md.error);
    }
    $('pod-facts').replaceChildren(...facts);
    const names = ((p && p.spec && p.spec.containers) || []).map((c) => c.name);
    const select = $('pod-container');
    if (names.join('\n') !== Array.from(select.options).map((o) => o.value).join('\n')) {
      select.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
    }
    $('pod-container-label').hidden = names.length < 2;
    const events = Array.from(view.events.values())
      .filter((e) => e.spec && e.spec.object === 'pod/' + open.name)
      .sort((a, b) => (String(a.spec.time) < String(b.spec.time) ? -1 : 1));
    $('pod-events-block').hidden = events.length === 0;
    $('pod-events').replaceChildren(...events.map((e) => {
      const s = e.spec;
      const when = new Date(s.time);
      return el('li', { 'data-event': e.name }, [
        el('span', { class: 'when', text: isNaN(when.getTime()) ? String(s.time) : when.toLocaleTimeString() }), ' ',
        stateWord(s.type === 'Warning' ? 'Warning' : 'Normal'), ' ',
        el('strong', { text: String(s.reason || '') }), ' ',
        String(s.message || '') + (s.count > 1 ? ' (' + s.count + ' times)' : ''),
      ]);
    }));
    // A log that could not be read (not placed yet, worker away) or ended is tried again when the pod changes.
    if (p && !open.following && open.seen !== podVersion(p)) followLogs(open);
  }

  const podVersion = (p) => [p.state, (p.metadata || {}).workedBy, (p.metadata || {}).restarts].join('|');

  function logsState(text) {
    $('logs-state').textContent = text;
  }

  let logChars = 0;
  function appendLog(text) {
    const pre = $('pod-logs');
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.append(document.createTextNode(text));
    logChars += text.length;
    if (logChars > MAX_LOG_CHARS) {
      const kept = pre.textContent.slice(-Math.floor(MAX_LOG_CHARS * 0.75));
      pre.textContent = kept;
      logChars = kept.length;
    }
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  /** GET /resources/pod/<name>/logs?follow=1, streamed into the page until it ends, the pod is closed or another container is chosen. */
  async function followLogs(open) {
    const p = view.pods.get(open.name);
    if (!p || open.starts >= MAX_LOG_STARTS) return;
    open.starts++;
    open.seen = podVersion(p);
    open.following = true;
    if (open.log) open.log.abort();
    const ctl = new AbortController();
    open.log = ctl;
    open.ctl.signal.addEventListener('abort', () => ctl.abort(), { once: true });
    const pre = $('pod-logs');
    const container = $('pod-container').value;
    const names = ((p.spec && p.spec.containers) || []).map((c) => c.name);
    const q = '?follow=1&tail=' + LOG_TAIL + (names.length > 1 && container ? '&container=' + encodeURIComponent(container) : '');
    try {
      logsState('Connecting…');
      const res = await fetch('/resources/pod/' + encodeURIComponent(open.name) + '/logs' + q, { headers: headers(), signal: ctl.signal, cache: 'no-store' });
      if (res.status === 401) return refused(await detailOf(res));
      if (!res.ok || !res.body) {
        logsState('No log: ' + sentence(await detailOf(res)));
        return;
      }
      pre.textContent = '';
      pre.hidden = false;
      logChars = 0;
      logsState('Following');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      // Until the container ends, the pod is closed or the connection drops.
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        appendLog(chunk.value);
      }
      logsState('The log ended (the container stopped or the connection dropped).');
    } catch (e) {
      if (!ctl.signal.aborted) logsState('The log stopped: ' + (e instanceof Error ? e.message : String(e)));
    } finally {
      if (open.log === ctl) open.following = false;
    }
  }

  function openPod(name) {
    if (view.pod && view.pod.name === name) return;
    closePod();
    const ctl = new AbortController();
    view.pod = { name: name, ctl: ctl, starts: 0, following: false, seen: undefined, log: undefined };
    view.events = new Map();
    $('pod-logs').textContent = '';
    $('pod-logs').hidden = true;
    logsState('');
    $('pod').hidden = false;
    // Events may be a type this cluster has none of: the list is then empty and the block stays hidden.
    watch('event', view.events, ctl.signal, () => renderPod());
    renderPod();
    $('pod').scrollIntoView({ block: 'start' });
    $('pod-close').focus();
  }

  function closePod() {
    if (!view.pod) return;
    view.pod.ctl.abort();
    view.pod = undefined;
    view.streams.delete('event');
    $('pod').hidden = true;
    $('pod-events').replaceChildren();
    $('pod-facts').replaceChildren();
  }

  function onHash() {
    const m = /^#pod\/([a-z0-9-]{1,63})$/.exec(location.hash);
    if (m && view.session) openPod(m[1]);
    else closePod();
  }

  // ---- signing in and out --------------------------------------------------------

  function stopSession() {
    closePod();
    if (view.session) view.session.abort();
    view.session = undefined;
    view.streams.clear();
  }

  function showLogin(message) {
    stopSession();
    view.paused = false;
    $('dashboard').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    const err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    setStatus(message ? 'Not signed in.' : 'Sign in with an API token.');
    const input = $('token');
    input.value = '';
    input.disabled = false;
    $('sign-in').disabled = false;
    input.focus();
  }

  /** The token stopped working during the session (deleted or expired). */
  function refused(detail) {
    view.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('The API no longer accepts this token: ' + sentence(detail) + ' Enter a valid token.');
  }

  function startSession() {
    stopSession();
    const ctl = new AbortController();
    view.session = ctl;
    view.liveSince = undefined;
    view.pods = new Map();
    view.replicasets = new Map();
    $('login').hidden = true;
    $('dashboard').hidden = false;
    $('sign-out').hidden = view.open;
    view.streams.set('pod', 'connecting');
    view.streams.set('replicaset', 'connecting');
    liveStatus();
    watch('pod', view.pods, ctl.signal, () => { render(); readDnsSoon(); });
    watch('replicaset', view.replicasets, ctl.signal, render);
    poll(ctl.signal);
    onHash();
  }

  /** Checks a token with one read; a refusal is said on the form, which asks again. */
  async function signIn(token) {
    view.token = token;
    $('token').disabled = true;
    $('sign-in').disabled = true;
    setStatus('Checking the token…');
    try {
      await getJson('/resources/node.api');
    } catch (e) {
      if (e instanceof Refused) {
        view.token = '';
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin('The API refused this token: ' + sentence(e.message) + ' Check it and enter it again.');
      }
      return showLogin('Could not reach the API: ' + (e instanceof Error ? e.message : String(e)) + '. Try again.');
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    startSession();
  }

  /** Without a stored token: an API run with --api-auth none answers at once; otherwise ask for one. */
  async function begin() {
    if (view.token) return signIn(view.token);
    try {
      const res = await fetch('/resources/node.api', { cache: 'no-store' });
      if (res.ok) {
        view.open = true;
        return startSession();
      }
    } catch (e) {
      return showLogin('Could not reach the API: ' + (e instanceof Error ? e.message : String(e)) + '. Try again.');
    }
    showLogin('');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = $('token').value.trim();
      if (token === '') return showLogin('Enter a token.');
      signIn(token);
    });
    $('sign-out').addEventListener('click', () => {
      view.token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      history.replaceState(null, '', location.pathname);
      showLogin('');
    });
    $('pods').addEventListener('click', (ev) => {
      const b = ev.target instanceof Element ? ev.target.closest('[data-open-pod]') : null;
      if (b) location.hash = 'pod/' + b.getAttribute('data-open-pod');
    });
    $('pod-close').addEventListener('click', () => {
      history.replaceState(null, '', location.pathname);
      closePod();
    });
    $('pod-container').addEventListener('change', () => {
      if (view.pod) {
        view.pod.starts = 0;
        followLogs(view.pod);
      }
    });
    window.addEventListener('hashchange', onHash);
    let hiding;
    document.addEventListener('visibilitychange', () => {
      clearTimeout(hiding);
      if (document.hidden) {
        hiding = setTimeout(() => {
          if (!view.session) return;
          view.paused = true;
          stopSession();
          setStatus('Paused while this tab is hidden.');
        }, PAUSE_HIDDEN_MS);
      } else if (view.paused) {
        view.paused = false;
        startSession();
      }
    });
    begin();
  });
})();
`;
