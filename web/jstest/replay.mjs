// replay.mjs: replays what the relay sent to each connection of a recorded
// session into a fresh version 4 client per connection, one that knows the
// passphrase but none of the participants' keys, and prints what it could
// read as JSON. The browser tests run it on a real recording
// (internal/testing/e2e); it is not a test file itself.
//
//   node web/jstest/replay.mjs < {"passphrase", "server", "room", "streams": [[frame, ...], ...]}
//   -> {"streams", "frames", "messages": ["sender: text", ...], "opened", "notices"}
//
// opened counts the bodies whose outer layer it opened under the frame key
// (messages, commits, GroupInfos): the proof that it had the right
// passphrase, so reading nothing means something.
import { readFileSync } from 'node:fs';
import { deriveRoom } from '../static/roomkey.mjs';
import { Group, HELD_MS } from '../static/group.mjs';
import { open, context } from '../static/envelope.mjs';
import { fromBase64 } from '../static/bytes.mjs';

const input = JSON.parse(readFileSync(0, 'utf8'));
const keys = await deriveRoom(input.passphrase, input.server, input.room);
const ctx = context(keys.roomId);
let clock = Date.now();
const out = { streams: 0, frames: 0, messages: [], opened: 0, notices: 0 };
const opens = async (b64) => {
  try { await open(keys.frameKey, ctx, fromBase64(b64)); return 1; } catch { return 0; }
};
for (const stream of input.streams || []) {
  let g = null;
  const events = [];
  for (const f of stream || []) {
    for (const b of [f.body, f.info]) if (typeof b === 'string' && b) out.opened += await opens(b);
    if (f.type === 'welcome') {
      if (!g) {
        g = await Group.create({ keys, now: () => clock, setTimer: () => {} });
        g.onFrame = () => {};
        g.onEvent = (e) => events.push(e);
      }
      await g.welcome({ you: f.you, sid: f.sid, members: f.members || [], resumed: !!f.resumed, info: f.info });
      if (!f.catchup) await g.caughtUp();
    } else if (!g) {
      continue;
    } else if (f.type === 'join' || f.type === 'away' || f.type === 'back' || f.type === 'leave') {
      await g[f.type]({ name: f.name, sid: f.sid });
    } else if (f.type === 'msg') {
      out.frames++;
      await g.receive(f);
    }
  }
  if (!g) continue;
  clock += HELD_MS;
  await g.sweep();
  await g.queue;
  out.streams++;
  out.messages.push(...events.filter((e) => e.type === 'message').map((e) => `${e.sender}: ${e.text}`));
  out.notices += events.filter((e) => e.type === 'problem').length;
}
console.log(JSON.stringify(out));
