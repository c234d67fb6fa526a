// mlsbench.mjs: how long the page's own work for the room's MLS group
// takes, in rooms of n members, all simulated in one tab (or one Node
// process): the real pages (session.mjs with group.mjs) against the
// in-memory relay (fakerelay.mjs), on a clock of their own that never
// moves on its own. Nothing here is a test: it measures, and checks only
// what timing cannot change (every page in the same epoch with the same
// members, each message shown once to every other member, no notice).
//
// Frames are delivered one at a time, and the next only once the page that
// got one is idle, so each figure is one page's work on one frame:
//
//   join            a newcomer's work from the relay's welcome until it is
//                   in the group and said "here": the room's kept frames
//                   (catch-up, unreadable to it), the GroupInfo opened, the
//                   external commit made and sealed with the next
//                   GroupInfo, and that commit adopted once the relay took
//                   it (the passphrase's PBKDF2 is not in it: 1,000
//                   iterations here, 600,000 on a real page, once per join)
//   process join    a member's work on a newcomer's commit
//   send            a typed message until its frame is handed to the socket
//   receive         a member's work on another's message
//   remove          the first present member's work on the relay's "leave"
//                   (the Remove commit made and sealed with its GroupInfo)
//                   and on the relay taking it
//   process remove  a member's work on that commit
//
// Timers (acknowledgements, the once-a-second sweep) never run, so that
// nothing but the step measured runs meanwhile.
//
//   node web/jstest/mlsbench.mjs [n ...]     (default 10 50)
//   in a browser: web/jstest/mlsbench.html (internal/testing/e2e TestMLSFigures)
import { FakeRelay, Clock } from './fakerelay.mjs';
import { Session } from '../static/session.mjs';
import { Group } from '../static/group.mjs';
import { deriveRoom } from '../static/roomkey.mjs';

const ITERATIONS = 1000;   // PBKDF2 iterations: the room key is not what is measured
const SENDERS = 10;        // members who each send one message
const ROOM = 'bench room';
const PASS = 'bench passphrase';

const nowMs = () => globalThis.performance.now();

// Room is n pages in one room, driven one frame at a time.
class Room {
  constructor() {
    this.clock = new Clock();
    // The relay's rate and byte limits would only hold frames back until
    // the clock moves; they are not what is measured.
    this.relay = new FakeRelay({ clock: this.clock, limits: { rate: 1e6, burst: 1e6, bytes: 1e9 } });
    this.owner = new Map(); // socket -> page
    this.pages = [];
    this.frames = 0;
  }

  page(name) {
    const { clock, relay } = this;
    const p = { name, shown: [], problems: [], inGroup: 0 };
    p.s = new Session({
      url: 'ws://bench/ws',
      connect: (url) => { const sock = relay.connect(url); this.owner.set(sock, p); return sock; },
      derive: (pass, server, room) => deriveRoom(pass, server, room, ITERATIONS),
      makeGroup: (o) => Group.create({ ...o, now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer }),
      now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer, setRepeat: clock.setRepeat, clearRepeat: clock.clearRepeat,
      random: () => 0.5,
      onEvent: (e) => {
        if (e.type === 'message') p.shown.push(`${e.sender}: ${e.text}`);
        else if (e.type === 'problem' || e.type === 'internal' || e.type === 'removed-you' || e.type === 'rejoining') p.problems.push(JSON.stringify(e));
        else if (e.type === 'in-group') p.inGroup++;
      },
    });
    this.pages.push(p);
    return p;
  }

  // run delivers frames, one at a time, until none moves; record(page,
  // frame, ms) hears of each frame a page got and how long its work on it
  // took.
  async run(record) {
    const { relay } = this;
    for (let i = 0; i < 1e6; i++) {
      if (relay.inbound.length) {
        const { sock, f, n } = relay.inbound.shift();
        relay.handle(sock, f, n || 0);
        continue;
      }
      if (!relay.outbound.length) return;
      const o = relay.outbound.shift();
      const p = this.owner.get(o.sock);
      const t0 = nowMs();
      if (o.open) {
        if (o.sock.readyState !== 0) continue;
        o.sock.readyState = 1;
        if (o.sock.onopen) o.sock.onopen();
      } else if (o.close !== undefined) {
        if (o.sock.onclose) o.sock.onclose({ code: o.close });
      } else if (o.sock.readyState === 1 && o.sock.onmessage) {
        o.sock.onmessage({ data: JSON.stringify(o.f) });
      } else {
        continue;
      }
      if (p) await idle(p.s);
      const ms = nowMs() - t0;
      this.frames++;
      if (p && o.f && record) record(p, o.f, ms);
    }
    throw new Error('the room never settled');
  }

  members() { return this.pages.filter((p) => p.s.group && !p.left); }
}

// idle waits until a page has finished with what it was given: its
// group's queue and its own tracked work, both of which may start more.
async function idle(s) {
  for (let i = 0; i < 1000; i++) {
    const q = s.group && s.group.queue;
    if (q) await q;
    if (s.work.size) { await Promise.allSettled([...s.work]); continue; }
    if (s.group && s.group.queue !== q) continue;
    return;
  }
  throw new Error('a page never became idle');
}

export const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// mean is there for the small figures: browsers round what a page may
// time (Firefox to 1 ms), and the mean of many is finer than each.
export const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

// size measures a room of n members; it returns the figures and what was
// checked.
export async function size(n, { log = () => {} } = {}) {
  if (!(n >= 3)) throw new Error('a room of at least 3 members');
  const room = new Room();
  const joins = [];        // {n: members after it, ms, catchup, catchupMs}
  const processJoin = [];  // {n, ms}
  const started = nowMs();
  for (let i = 0; i < n; i++) {
    const p = room.page(`m${i}`);
    let ms = 0;
    let catchup = 0;
    let catchupMs = 0;
    const after = i + 1;
    if (p.s.start({ room: ROOM, name: p.name, passphrase: PASS })) throw new Error('start refused');
    await room.run((q, f, dt) => {
      if (q === p) {
        if (f.type === 'server') return; // the room key (PBKDF2): not MLS, not measured
        ms += dt;
        // The last catch-up frame starts the join: its time is the join's.
        if (f.type === 'msg' && f.old && !(p.s.group && p.s.group.pending)) { catchup++; catchupMs += dt; }
        return;
      }
      if (f.type === 'msg' && f.commit !== undefined) processJoin.push({ n: after, ms: dt });
    });
    if (p.inGroup !== 1) throw new Error(`${p.name} is not in the group (${p.problems.join('; ')})`);
    if (i > 0) joins.push({ n: after, ms, catchup, catchupMs });
    room.clock.t += 1000; // lazily: no timer runs
    if (after % 10 === 0 || after === n) log(`  ${after} members (${Math.round(nowMs() - started)} ms so far)`);
  }
  const built = nowMs() - started;
  check(room, n);

  // Messages from SENDERS members, the newest joiner's among them.
  const send = [];
  const receive = [];
  const senders = room.pages.slice(-Math.min(SENDERS, n));
  for (const p of senders) {
    const text = `hello from ${p.name}`;
    const t0 = nowMs();
    if (!p.s.send(text)) throw new Error('send refused');
    await idle(p.s);
    send.push(nowMs() - t0);
    await room.run((q, f, dt) => {
      if (q !== p && f.type === 'msg' && f.commit === undefined && !f.bulk && !f.old) receive.push(dt);
    });
    room.clock.t += 1000;
  }
  for (const p of room.pages) {
    const want = senders.filter((x) => x !== p).map((x) => `${x.name}: hello from ${x.name}`);
    if (JSON.stringify(p.shown) !== JSON.stringify(want)) throw new Error(`${p.name} shows ${JSON.stringify(p.shown)}, want ${JSON.stringify(want)}`);
  }

  // A member leaves (not the first, who commits the removal).
  const leaver = room.pages[1];
  let remove = 0;
  const processRemove = [];
  const epoch = room.pages[0].s.group.epoch;
  leaver.s.leave();
  leaver.left = true;
  await room.run((q, f, dt) => {
    if (f.type === 'msg' && f.commit !== undefined) processRemove.push(dt);
    else if (q === room.pages[0] && (f.type === 'leave' || f.type === 'sent')) remove += dt;
  });
  check(room, n - 1);
  if (room.pages[0].s.group.epoch !== epoch + 1) throw new Error('the removal took more than one commit');
  if (processRemove.length !== n - 2) throw new Error(`${processRemove.length} members processed the removal, want ${n - 2}`);

  const at = (xs) => xs.filter((x) => x.n === n).map((x) => x.ms);
  return {
    n,
    buildMs: Math.round(built),
    frames: room.frames,
    join: { median: median(joins.map((x) => x.ms)), last: joins[joins.length - 1].ms, lastCatchup: joins[joins.length - 1].catchup, lastCatchupMs: joins[joins.length - 1].catchupMs },
    processJoin: { median: median(processJoin.map((x) => x.ms)), last: median(at(processJoin)) },
    send: { median: median(send), mean: mean(send), count: send.length },
    receive: { median: median(receive), mean: mean(receive), count: receive.length },
    remove,
    processRemove: { median: median(processRemove), count: processRemove.length },
  };
}

// check fails unless every page still in the room is in one epoch with the
// same n members (names and safety codes), and no page showed a notice.
function check(room, n) {
  const ps = room.members();
  const first = ps[0].s.group;
  const want = JSON.stringify(first.memberList().map((m) => [m.name, m.code]).sort());
  for (const p of ps) {
    const g = p.s.group;
    const list = g.memberList();
    if (g.epoch !== first.epoch) throw new Error(`${p.name} is at epoch ${g.epoch}, ${ps[0].name} at ${first.epoch}`);
    if (list.length !== n || list.some((m) => m.status !== 'here')) throw new Error(`${p.name} lists ${JSON.stringify(list.map((m) => `${m.name}:${m.status}`))}, want ${n} members here`);
    if (JSON.stringify(list.map((m) => [m.name, m.code]).sort()) !== want) throw new Error(`${p.name}'s member list differs from ${ps[0].name}'s`);
    if (p.problems.length) throw new Error(`${p.name} said: ${p.problems.join('; ')}`);
  }
}

// run measures each size in turn, after a room of 3 whose figures are
// dropped (the first calls compile the library and the cipher suite).
export async function run({ sizes = [10, 50], log = () => {} } = {}) {
  const out = {
    agent: globalThis.navigator ? globalThis.navigator.userAgent : `node ${globalThis.process.version}`,
    wasm: typeof globalThis.WebAssembly !== 'undefined',
    sizes: [],
  };
  await size(3);
  for (const n of sizes) {
    log(`${n} members:`);
    out.sizes.push(await size(n, { log }));
  }
  return out;
}

// table puts figures into words, one line per size.
export function table(r) {
  const f = (x) => (x >= 100 ? Math.round(x) : x.toFixed(1));
  const lines = [`${r.agent}, WebAssembly ${r.wasm ? 'on' : 'off'}`,
    'members  join (median / last)  process join (median / at last)  send (mean)  receive (mean)  remove  process remove   (ms)'];
  for (const s of r.sizes) {
    lines.push(`${String(s.n).padStart(7)}  ${f(s.join.median)} / ${f(s.join.last)} (catch-up ${s.join.lastCatchup} frames ${f(s.join.lastCatchupMs)})`
      + `  ${f(s.processJoin.median)} / ${f(s.processJoin.last)}  ${f(s.send.median)} (${f(s.send.mean)})  ${f(s.receive.median)} (${f(s.receive.mean)})`
      + `  ${f(s.remove)}  ${f(s.processRemove.median)}`);
  }
  return lines.join('\n');
}

if (globalThis.process && import.meta.url === `file://${globalThis.process.argv[1]}`) {
  const sizes = globalThis.process.argv.slice(2).map(Number);
  const r = await run({ sizes: sizes.length ? sizes : [10, 50], log: (s) => console.error(s) });
  console.log(table(r));
}
