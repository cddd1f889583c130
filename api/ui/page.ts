/**
 * The dashboard's page: structure only. Every value in it is filled in by
 * app.js with text nodes (never markup), after a token is given.
 */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>kith dashboard</title>
<link rel="icon" href="/ui/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header class="bar">
  <h1>kith</h1>
  <p id="status" role="status" aria-live="polite">Loading…</p>
  <button id="sign-out" type="button" hidden>Sign out</button>
</header>
<main>
  <noscript><p class="problem">The dashboard needs JavaScript.</p></noscript>

  <section id="login" hidden aria-labelledby="login-title">
    <form id="login-form" autocomplete="off">
      <h2 id="login-title">Sign in</h2>
      <p>Enter an API token. A <code>view</code> token is enough: make one with
      <code>kith token create --role view</code>; an API host's admin token is in
      <code>&lt;data-dir&gt;/admin.token</code> (<code>/var/lib/kith</code> by default). It is kept in this tab only (session storage).</p>
      <p id="login-error" class="problem" role="alert" hidden></p>
      <label for="token">Token</label>
      <input id="token" name="token" type="password" spellcheck="false" autocapitalize="off" required>
      <button id="sign-in" type="submit">Sign in</button>
    </form>
  </section>

  <div id="dashboard" hidden>
    <section id="pod" class="panel" hidden aria-labelledby="pod-title">
      <div class="panel-head">
        <h2 id="pod-title">Pod</h2>
        <button id="pod-close" type="button">Close</button>
      </div>
      <dl id="pod-facts" class="facts"></dl>
      <div class="logs-head">
        <h3>Logs</h3>
        <label id="pod-container-label" hidden>Container <select id="pod-container"></select></label>
        <span id="logs-state" class="note" role="status"></span>
      </div>
      <pre id="pod-logs" tabindex="0" aria-label="Log of the pod" hidden></pre>
      <div id="pod-events-block" hidden>
        <h3>Events</h3>
        <ol id="pod-events" class="events"></ol>
      </div>
    </section>

    <section aria-labelledby="nodes-title">
      <h2 id="nodes-title">Nodes <span class="count" id="nodes-count"></span></h2>
      <table id="nodes">
        <thead><tr><th>Name</th><th>Type</th><th>State</th><th>Address</th><th>Capacity</th><th>Pods</th></tr></thead>
        <tbody></tbody>
      </table>
      <p class="empty" id="nodes-empty" hidden>No nodes.</p>
    </section>

    <section aria-labelledby="pods-title">
      <h2 id="pods-title">Pods <span class="count" id="pods-count"></span></h2>
      <table id="pods">
        <thead><tr><th>Name</th><th>State</th><th>Ready</th><th>Restarts</th><th>Worker</th><th>IP</th><th>ReplicaSet</th></tr></thead>
        <tbody></tbody>
      </table>
      <p class="empty" id="pods-empty" hidden>No pods.</p>
    </section>

    <section aria-labelledby="replicasets-title">
      <h2 id="replicasets-title">ReplicaSets <span class="count" id="replicasets-count"></span></h2>
      <table id="replicasets">
        <thead><tr><th>Name</th><th>Replicas</th><th>Ready</th><th>Updated</th><th>Available</th><th>Rollout</th></tr></thead>
        <tbody></tbody>
      </table>
      <p class="empty" id="replicasets-empty" hidden>No ReplicaSets.</p>
    </section>

    <section aria-labelledby="dns-title">
      <h2 id="dns-title">DNS names <span class="count" id="dns-count"></span></h2>
      <table id="dns">
        <thead><tr><th>Name</th><th>Kind</th><th>Answer</th></tr></thead>
        <tbody></tbody>
      </table>
      <p class="empty" id="dns-empty" hidden>No names.</p>
      <p class="note">A records and aliases as etcd holds them; the dns plugin also answers for each ReplicaSet (<code>&lt;rs&gt;.replicaset</code>, its ready pods) and the reverse names.</p>
    </section>
  </div>
</main>
</body>
</html>
`;

/** A small mark for the browser's tab. */
export const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2f6f4f"/><path d="M4 3v10M4 8l6-5M4 8l6 5" stroke="#fff" stroke-width="2" fill="none"/></svg>
`;
