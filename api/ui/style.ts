/**
 * The dashboard's style: tables at a laptop's width, one card per row at a
 * phone's; states are words, their colour only repeats what the word says.
 */
export const STYLE = `:root {
  color-scheme: light dark;
  --bg: #fafaf8; --fg: #1d1f1e; --muted: #5c625f; --line: #d6d9d7; --panel: #ffffff;
  --good: #1e6b3a; --warn: #8a5a00; --bad: #a8241d; --accent: #2f6f4f;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #151716; --fg: #e6e8e7; --muted: #a3aaa6; --line: #343836; --panel: #1d201f;
    --good: #6fcf8e; --warn: #e5b454; --bad: #f08a80; --accent: #7fc8a1; }
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--fg); }
body { overflow-wrap: anywhere; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, monospace; }
.bar { display: flex; flex-wrap: wrap; align-items: center; gap: 0.25rem 1rem; padding: 0.6rem 1rem;
  border-bottom: 1px solid var(--line); background: var(--panel); }
.bar h1 { margin: 0; font-size: 1.2rem; }
#status { margin: 0; flex: 1 1 12rem; color: var(--muted); font-size: 0.9rem; }
#status.error { color: var(--bad); font-weight: 600; }
main { max-width: 80rem; margin: 0 auto; padding: 0.5rem 1rem 3rem; }
section { margin: 1.25rem 0; }
h2 { font-size: 1.1rem; margin: 0 0 0.5rem; }
h3 { font-size: 1rem; margin: 0.75rem 0 0.4rem; }
.count { color: var(--muted); font-weight: normal; }
.note, .empty { color: var(--muted); font-size: 0.9rem; }
.problem { color: var(--bad); font-weight: 600; }
button, input, select { font: inherit; }
button { border: 1px solid var(--line); background: var(--panel); color: var(--fg); border-radius: 4px; padding: 0.3rem 0.8rem; cursor: pointer; }
button:focus-visible, input:focus-visible, select:focus-visible, pre:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
#login form { max-width: 32rem; margin: 2rem auto; padding: 1rem 1.25rem; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }
#login label { display: block; font-weight: 600; margin-top: 0.5rem; }
#login input { width: 100%; padding: 0.4rem; margin: 0.25rem 0 0.75rem; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); }
table { width: 100%; border-collapse: collapse; background: var(--panel); border: 1px solid var(--line); }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 0.85rem; color: var(--muted); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; }
button.link { border: 0; background: none; padding: 0; color: var(--accent); text-decoration: underline; text-align: left; font-weight: 600; }
.state { font-weight: 600; }
.state.good { color: var(--good); }
.state.warn { color: var(--warn); }
.state.bad { color: var(--bad); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 0.75rem 1rem; }
.panel-head, .logs-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.5rem 1rem; }
.panel-head h2 { flex: 1; margin: 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0.75rem 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
#pod-logs { margin: 0; padding: 0.5rem; min-height: 4rem; max-height: 55vh; overflow: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; background: var(--bg); border: 1px solid var(--line); border-radius: 4px;
  font: 0.85rem/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.events { margin: 0; padding-left: 1.25rem; }
.events li { margin: 0.2rem 0; }
.events .when { color: var(--muted); font-variant-numeric: tabular-nums; }
[hidden] { display: none !important; }

/* A phone: each row a card of "heading: value" lines, nothing wider than the screen. */
@media (max-width: 700px) {
  main { padding: 0.25rem 0.6rem 2rem; }
  table, tbody, tr, td { display: block; width: 100%; }
  table { border: 0; background: none; }
  thead { display: none; }
  tr { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; margin-bottom: 0.5rem; padding: 0.3rem 0; }
  td { border: 0; padding: 0.15rem 0.7rem; display: grid; grid-template-columns: 7rem 1fr; gap: 0.5rem; }
  td::before { content: attr(data-label); color: var(--muted); font-size: 0.85rem; }
  .facts { grid-template-columns: 1fr; }
  .facts dd { margin-bottom: 0.3rem; }
}
`;
