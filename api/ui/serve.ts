import { createHash } from 'node:crypto';
import type Router from '@koa/router';
import type { Context } from 'koa';
import { ICON, PAGE } from './page.js';
import { SCRIPT } from './script.js';
import { STYLE } from './style.js';

/**
 * The dashboard (SPEC §12): `GET /ui` and its three assets, served from
 * strings compiled into the agent, so the source tree, dist/ and an
 * installed package all serve the same page. They hold no data and need no
 * token; the page asks for one and sends it with every request of its own.
 */

/** Only this origin's script, style and requests; nothing inline, no frames, no plugins. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  type: string;
  body: string;
  etag: string;
}

const asset = (type: string, body: string): Asset => ({
  type,
  body,
  etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
});

export const DASHBOARD_ASSETS: Record<string, Asset> = {
  '/ui': asset('text/html; charset=utf-8', PAGE),
  '/ui/app.js': asset('text/javascript; charset=utf-8', SCRIPT),
  '/ui/app.css': asset('text/css; charset=utf-8', STYLE),
  '/ui/icon.svg': asset('image/svg+xml', ICON),
};

function send(ctx: Context, a: Asset): void {
  ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
  // Checked again on every load, so a new agent's page is never mixed with an old one's script.
  ctx.set('Cache-Control', 'no-cache');
  ctx.set('ETag', a.etag);
  if (ctx.get('if-none-match') === a.etag) {
    ctx.status = 304;
    return;
  }
  ctx.type = a.type;
  ctx.body = a.body;
}

export function dashboardRoutes(router: Router): void {
  for (const [path, a] of Object.entries(DASHBOARD_ASSETS)) router.get(path, (ctx) => send(ctx, a));
}
