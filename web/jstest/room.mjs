// room.mjs: what the page's tests share: pages (Session + Group, the real
// modules) against the in-memory relay (fakerelay.mjs) on a fake clock,
// and readers of what each page showed.
import assert from 'node:assert/strict';
import { FakeRelay, Clock } from './fakerelay.mjs';
import { Session } from '../static/session.mjs';
import { Group } from '../static/group.mjs';
import { deriveRoom } from '../static/roomkey.mjs';
import { words } from '../static/view.mjs';

export const FAST = 1000; // PBKDF2 iterations for tests that are not about the iteration count
export const ROOM = 'Book Club';
export const PASS = 'correct horse';

// setup makes a relay and a maker of pages: mk(label, extra) is a Session
// whose every event is kept in .events.
export function setup(opts = {}) {
  const clock = new Clock();
  const relay = new FakeRelay({ clock, ...opts });
  const mk = (label, extra = {}) => {
    const events = [];
    const { signing, ...rest } = extra;
    const s = new Session({
      url: 'ws://127.0.0.1/ws',
      connect: relay.connect,
      derive: (p, srv, r) => deriveRoom(p, srv, r, FAST),
      makeGroup: (o) => Group.create({ ...o, signing: signing || o.signing, now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer }),
      now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer, setRepeat: clock.setRepeat, clearRepeat: clock.clearRepeat,
      random: () => 0.5,
      onEvent: (e) => events.push(e),
      ...rest,
    });
    s.events = events;
    s.label = label;
    relay.watch(s);
    return s;
  };
  return { clock, relay, mk };
}

// joined starts s in the room as name and lets the room settle (the group
// joined, its "here" said).
export async function joined(relay, s, name, { room = ROOM, passphrase = PASS, wait = 1500 } = {}) {
  assert.equal(s.start({ room, name, passphrase }), null);
  await relay.settle();
  await relay.advance(wait);
  return s;
}

// shown is what a page showed as messages, "sender: text", in order.
export const shown = (s) => s.events.filter((e) => e.type === 'message').map((e) => `${e.sender}: ${e.text}`);

// said is every notice a page showed, in words, as "level: text".
export const said = (s) => s.events.map((e) => words(e)).filter(Boolean).map(([l, t]) => `${l}: ${t}`);

// warnings is what a page warned of (in words).
export const warnings = (s) => s.events.map((e) => words(e)).filter((w) => w && w[0] === 'error').map((w) => w[1]);

// problems is the typed events of refused frames.
export const problems = (s) => s.events.filter((e) => e.type === 'problem');

// members is the member list a page shows last: names, ours first.
export const members = (s) => { const m = s.events.filter((e) => e.type === 'members').pop(); return m ? m.list.map((x) => x.name) : []; };

// roster is the member list with each member's status.
export const roster = (s) => (s.group ? s.group.memberList().map((m) => `${m.name}:${m.status}`) : []);

// states is what became of an item, each state once, in order.
export const states = (s, item) => s.events.filter((e) => e.type === 'outgoing' && e.item === item).map((e) => e.state)
  .filter((x, i, a) => a.indexOf(x) === i);

// epochs is each page's epoch: equal when they share the room's keys.
export const epochs = (...ss) => ss.map((s) => (s.group ? s.group.epoch : -1));
