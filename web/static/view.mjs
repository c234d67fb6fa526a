// view.mjs: everything the page draws: the views, the message list,
// notices, the member list with safety codes, the status line and the
// title. User-supplied text (names, messages) only ever reaches the page
// through textContent; the server's CSP (Trusted Types) refuses innerHTML
// anyway.

export const $ = (id) => document.getElementById(id);

const MAX_ITEMS = 2000;

export function setState(s) { document.documentElement.dataset.state = s; }

export function show(id) {
  for (const v of ['unsupported', 'join-view', 'chat-view']) $(v).hidden = v !== id;
}

export function status(text) { $('status').textContent = text; }

export function title(room, unread) {
  const base = room ? `${room} — onionchat` : 'onionchat';
  document.title = unread ? `(${unread}) ${base}` : base;
}

export function clearMessages() { $('messages').replaceChildren(); }

export function addMessage(sender, text, time, opts = {}) {
  const li = document.createElement('li');
  li.className = 'msg';
  if (opts.own) li.classList.add('own');
  if (opts.pending) li.classList.add('pending');
  if (opts.history) li.classList.add('history');
  const head = document.createElement('div');
  head.className = 'head';
  const who = document.createElement('span');
  who.className = 'sender';
  who.textContent = sender;
  const when = document.createElement('time');
  const d = new Date(time);
  when.dateTime = isNaN(d) ? '' : d.toISOString();
  when.textContent = isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(who, ' ', when);
  if (opts.history) {
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = ' earlier';
    head.append(tag);
  }
  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = text;
  li.append(head, body);
  append(li);
  return li;
}

export function notice(text, kind) {
  const li = document.createElement('li');
  li.className = 'notice' + (kind ? ' ' + kind : '');
  li.textContent = text;
  append(li);
}

function append(li) {
  const ol = $('messages');
  const atEnd = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  ol.append(li);
  while (ol.children.length > MAX_ITEMS) ol.firstElementChild.remove();
  if (atEnd) ol.scrollTop = ol.scrollHeight;
}

const STATUS_TEXT = {
  waiting: 'waiting for keys…',
  unopenable: 'different passphrase?',
  old: 'older version: should reload',
};

// members draws the member list: each entry is {name, self, code, status,
// changed}; code is the member's safety code once their hello arrived.
export function members(list) {
  $('members').replaceChildren(...list.map((m) => {
    const li = document.createElement('li');
    li.className = 'member';
    li.dataset.status = m.status;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = m.name;
    li.append(name);
    if (m.self) {
      li.classList.add('me');
      const you = document.createElement('span');
      you.className = 'tag';
      you.textContent = ' (you)';
      li.append(you);
    }
    if (m.changed) {
      li.classList.add('changed');
      const warn = document.createElement('span');
      warn.className = 'tag warn';
      warn.textContent = ' code changed';
      li.append(warn);
    }
    const code = document.createElement('span');
    code.className = m.code ? 'code' : 'code none';
    code.textContent = m.code || STATUS_TEXT[m.status] || '';
    li.append(code);
    return li;
  }));
  $('member-count').textContent = list.length ? `(${list.length})` : '';
}

export function myCode(code) { $('my-code').textContent = code || ''; }
