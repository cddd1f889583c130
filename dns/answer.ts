import { CLASS, EDNS_PAYLOAD, RCODE, TYPE, type Query, type Response, type Rr } from './message.js';
import { normalizeName, type Soa, type Zone, type ZoneRecord } from './zone.js';

/**
 * The answer logic of SPEC §4: a pure function from the zone and one parsed
 * query to a response (or to "outside the zone", which the forwarder decides,
 * or to "drop"). No sockets, no clocks.
 */

export type Outcome =
  | { kind: 'drop' }
  /** Not ours: forward it or refuse it. */
  | { kind: 'outside' }
  /** `cacheable`: the same question always gets these bytes until the zone changes. */
  | { kind: 'reply'; response: Response; cacheable: boolean };

export interface AnswerOptions {
  /** Whether RA is set (a forwarder is configured). */
  recursionAvailable?: boolean;
}

const fqdn = (n: string) => `${n}.`;

function baseResponse(q: Query, opts: AnswerOptions, rcode: number): Response {
  return {
    id: q.id,
    opcode: q.opcode,
    aa: false,
    tc: false,
    rd: q.rd,
    ra: !!opts.recursionAvailable,
    cd: q.cd,
    rcode,
    question: q.question,
    answers: [],
    authorities: [],
    additionals: [],
    edns: q.edns ? { payload: EDNS_PAYLOAD, version: 0, do: q.edns.do } : undefined,
  };
}

export function soaRr(name: string, soa: Soa, ttl: number): Rr {
  return {
    name,
    type: TYPE.SOA,
    class: CLASS.IN,
    ttl,
    primary: fqdn(soa.mname),
    admin: fqdn(soa.rname),
    serial: soa.serial,
    refresh: soa.refresh,
    retry: soa.retry,
    expiration: soa.expire,
    minimum: soa.minimum,
  };
}

const aRr = (name: string, address: string, ttl: number): Rr => ({ name, type: TYPE.A, class: CLASS.IN, ttl, address });

/** Answers one query from the zone. */
export function answer(zone: Zone, q: Query, opts: AnswerOptions = {}): Outcome {
  if (q.qr) return { kind: 'drop' };
  const reply = (r: Response, cacheable = false): Outcome => ({ kind: 'reply', response: r, cacheable });
  if (q.opcode !== 0) return reply(baseResponse(q, opts, RCODE.NOTIMP));
  if (q.qdcount !== 1 || !q.question || q.malformed) {
    const r = baseResponse(q, opts, RCODE.FORMERR);
    if (q.qdcount !== 1) r.question = undefined;
    return reply(r);
  }
  if (q.edns && q.edns.version > 0) {
    const r = baseResponse(q, opts, RCODE.BADVERS);
    return reply(r, true);
  }
  const { question } = q;
  const name = normalizeName(question.name);

  if (question.class === CLASS.CH) return chaos(zone, q, name, opts);

  const auth = zone.authority(name);
  if (!auth) return { kind: 'outside' };
  if (question.class !== CLASS.IN && question.class !== CLASS.ANY) return reply(baseResponse(q, opts, RCODE.REFUSED));

  if (!zone.synced) return reply(baseResponse(q, opts, RCODE.SERVFAIL));
  const ttl = zone.ttl;
  const owner = question.name;
  const r = baseResponse(q, opts, RCODE.NOERROR);
  r.aa = true;
  const soa = zone.soaOf(auth.apex);
  const type = question.type;

  if (type === TYPE.AXFR) {
    if (q.transport !== 'tcp' || !q.loopback || auth.kind !== 'cluster' || name !== auth.apex) {
      r.rcode = RCODE.REFUSED;
      r.aa = false;
      return reply(r);
    }
    for (const rec of zone.transfer()) r.answers.push(recordRr(rec, ttl));
    r.answers.push(soaRr(fqdn(auth.apex), soa, ttl));
    return reply(r);
  }
  if (type === TYPE.IXFR || type === TYPE.MAILA || type === TYPE.MAILB) {
    r.rcode = RCODE.NOTIMP;
    r.aa = false;
    return reply(r);
  }

  const isApex = name === auth.apex;
  const addresses = auth.kind === 'cluster' ? zone.addresses(name) : [];
  const srvs = auth.kind === 'cluster' ? zone.srv(name) : [];
  const ptrs = auth.kind === 'reverse' ? zone.ptr(name) : [];

  // RRsets in the order ANY lists them.
  const rrsets: { type: number; build: () => void }[] = [];
  if (isApex) {
    rrsets.push({ type: TYPE.SOA, build: () => r.answers.push(soaRr(owner, soa, ttl)) });
    rrsets.push({
      type: TYPE.NS,
      build: () => {
        r.answers.push({ name: owner, type: TYPE.NS, class: CLASS.IN, ttl, ns: fqdn(zone.nsName) });
        for (const a of zone.addresses(zone.nsName)) r.additionals.push(aRr(fqdn(zone.nsName), a, ttl));
      },
    });
  }
  if (addresses.length > 0) {
    rrsets.push({ type: TYPE.A, build: () => addresses.forEach((a) => r.answers.push(aRr(owner, a, ttl))) });
  }
  if (srvs.length > 0) {
    rrsets.push({
      type: TYPE.SRV,
      build: () => {
        for (const s of srvs) {
          r.answers.push({ name: owner, type: TYPE.SRV, class: CLASS.IN, ttl, priority: s.priority, weight: s.weight, port: s.port, target: fqdn(s.target) });
        }
        const seen = new Set<string>();
        for (const s of srvs) {
          if (seen.has(s.target)) continue;
          seen.add(s.target);
          for (const a of zone.addresses(s.target)) r.additionals.push(aRr(fqdn(s.target), a, ttl));
        }
      },
    });
  }
  if (ptrs.length > 0) {
    rrsets.push({ type: TYPE.PTR, build: () => ptrs.forEach((p) => r.answers.push({ name: owner, type: TYPE.PTR, class: CLASS.IN, ttl, domain: fqdn(p) })) });
  }

  if (type === TYPE.ANY) {
    // RFC 8482: over UDP one RRset is enough; over TCP all of them.
    const chosen = q.transport === 'udp' ? rrsets.slice(0, 1) : rrsets;
    chosen.forEach((s) => s.build());
  } else {
    rrsets.find((s) => s.type === type)?.build();
  }

  if (r.answers.length === 0) {
    const exists = rrsets.length > 0 || zone.isEmptyNonTerminal(name);
    if (!exists) r.rcode = RCODE.NXDOMAIN;
    r.authorities.push(soaRr(fqdn(auth.apex), soa, Math.min(ttl, soa.minimum)));
  }
  return reply(r, true);
}

/** Class CH: the server's identity and version (`id.server`, `hostname.bind`, `version.bind`, `version.server`). */
function chaos(zone: Zone, q: Query, name: string, opts: AnswerOptions): Outcome {
  const text = name === 'id.server' || name === 'hostname.bind' ? zone.nodeName : name === 'version.bind' || name === 'version.server' ? zone.version : undefined;
  const r = baseResponse(q, opts, RCODE.NOERROR);
  if (text === undefined) {
    r.rcode = RCODE.REFUSED;
    return { kind: 'reply', response: r, cacheable: true };
  }
  r.aa = true;
  if (q.question!.type === TYPE.TXT || q.question!.type === TYPE.ANY) {
    r.answers.push({ name: q.question!.name, type: TYPE.TXT, class: CLASS.CH, ttl: 0, data: [text] });
  }
  return { kind: 'reply', response: r, cacheable: true };
}

function recordRr(rec: ZoneRecord, ttl: number): Rr {
  const name = fqdn(rec.name);
  switch (rec.type) {
    case 'A':
      return aRr(name, rec.address, ttl);
    case 'NS':
      return { name, type: TYPE.NS, class: CLASS.IN, ttl, ns: fqdn(rec.ns) };
    case 'SOA':
      return soaRr(name, rec.soa, ttl);
    case 'SRV':
      return { name, type: TYPE.SRV, class: CLASS.IN, ttl, priority: rec.srv.priority, weight: rec.srv.weight, port: rec.srv.port, target: fqdn(rec.srv.target) };
  }
}

/** A reply for a name outside the zone that will not be forwarded. */
export function refused(q: Query, opts: AnswerOptions = {}): Response {
  return baseResponse(q, opts, RCODE.REFUSED);
}

/** A reply for a forward that failed. */
export function servfail(q: Query, opts: AnswerOptions = {}): Response {
  return baseResponse(q, opts, RCODE.SERVFAIL);
}
