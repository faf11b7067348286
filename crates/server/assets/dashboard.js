// switchback dashboard: keeps the server-rendered page live. The status (routes,
// services, convergence) comes pushed over `/api/stream`; only while that stream is down
// does the script poll `/api/status`. Events, blocks and stale phones need a session and
// are polled, and asked for again at once when the status shows a new generation or
// route. Every value from the server goes into the page through textContent or an
// attribute, never as HTML. Without a session (body[data-session]) the script never
// asks for events or phones.
'use strict';

(() => {
  const POLL_MS = 2000;
  /// The stale-phone list walks every phone on the server: ask for it less often.
  const STALE_MS = 10000;
  /// After the server refused the stream (503: too many open), try it again this much
  /// later; the browser retries a dropped stream by itself.
  const STREAM_RETRY_MS = 5000;
  const ROUTES = ['sip', 'stun'];

  const body = document.body;
  const demo = body.dataset.demo === 'true';
  /// Cleared when the server stops honouring the session (expired, logged out elsewhere).
  let loggedIn = body.dataset.session === 'true';
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';
  const sites = { primary: body.dataset.primarySite, backup: body.dataset.backupSite };

  // The server's clock minus ours: from the page, then from each answer's Date header.
  const renderedAt = Date.parse(body.dataset.now || '');
  let skewMs = Number.isNaN(renderedAt) ? 0 : renderedAt - Date.now();
  let lastAnswer = Date.now();
  let timer = null;
  let polling = false;
  let pollAgain = false;
  let staleFetchedAt = 0;
  let staleShown = document.querySelectorAll('[data-testid="stale-phones"] tbody tr').length;
  const RESULT_MS = 60000; // how long an action's answer stays under its buttons
  let staleCount = null;
  /// The latest status, from the stream or a poll.
  let latest = null;
  let stream = null;
  /// The stream failed and has not come back yet: the status is polled meanwhile.
  let streamBroken = false;

  const el = (testid) => document.querySelector(`[data-testid="${testid}"]`);

  function setText(testid, value) {
    const node = el(testid);
    const text = value === null || value === undefined ? '—' : String(value);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- time: mirrors relative() and Stamp in dashboard.rs ----

  const serverNow = () => Date.now() + skewMs;

  function relative(iso) {
    if (!iso) return 'never';
    const delta = Math.floor((serverNow() - Date.parse(iso)) / 1000);
    // A time to come (a block's end) reads "in 5 min".
    const [seconds, before, after] = delta < -5 ? [-delta, 'in ', ''] : [Math.max(0, delta), '', ' ago'];
    if (seconds < 5) return 'just now';
    if (seconds < 90) return `${before}${seconds} s${after}`;
    if (seconds < 5400) return `${before}${Math.floor(seconds / 60)} min${after}`;
    if (seconds < 172800) return `${before}${Math.floor(seconds / 3600)} h${after}`;
    return `${before}${Math.floor(seconds / 86400)} d${after}`;
  }

  function absolute(iso) {
    if (!iso) return '';
    return `${new Date(iso).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  }

  function clock(iso) {
    return new Date(iso).toISOString().slice(11, 19);
  }

  function setTime(node, iso) {
    if (!node) return;
    node.setAttribute('datetime', iso || '');
    node.title = absolute(iso);
    node.textContent = relative(iso);
  }

  function timeNode(iso) {
    const node = make('time');
    setTime(node, iso);
    return node;
  }

  function tickTimes() {
    // An open stream is live even when nothing changes (the server then sends nothing).
    if (streaming()) lastAnswer = Date.now();
    for (const node of document.querySelectorAll('time[datetime]')) {
      const text = relative(node.getAttribute('datetime'));
      if (node.textContent !== text) node.textContent = text;
    }
    const ago = Math.floor((Date.now() - lastAnswer) / 1000);
    setText('updated', ago < 5 ? 'live' : `updated ${ago} s ago`);
    setText('connection-since', `${ago} s`);
  }

  function durationWords(seconds) {
    return seconds >= 120 && seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
  }

  // ---- fetching ----

  async function getJSON(url) {
    const response = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
    const date = Date.parse(response.headers.get('date') || '');
    // The Date header has whole seconds: only follow it when it moves by more.
    if (!Number.isNaN(date) && Math.abs(date - Date.now() - skewMs) > 1500) skewMs = date - Date.now();
    if (!response.ok) {
      const err = new Error(`${url}: HTTP ${response.status}`);
      err.status = response.status;
      throw err;
    }
    return response.json();
  }

  /// A read that needs the session; `null` once the server says it has ended.
  async function getSessionJSON(url) {
    if (!loggedIn) return null;
    try {
      return await getJSON(url);
    } catch (err) {
      if (err.status !== 401) throw err;
      loggedIn = false;
      const ended = el('session-ended');
      if (ended) ended.hidden = false;
      return null;
    }
  }

  // ---- rendering ----

  const healthWord = (healthy) => (healthy === null || healthy === undefined ? 'unknown' : healthy ? 'up' : 'down');

  function renderRoute(name, route) {
    const card = el(`route-${name}`);
    if (!card || !route) return;
    card.dataset.state = route.state;
    const badge = el(`route-${name}-state`);
    badge.className = `badge state-${route.state}`;
    setText(`route-${name}-state`, route.state);
    el(`route-${name}-mode`).className = `mode mode-${route.mode}`;
    setText(`route-${name}-mode`, route.mode);
    setText(`route-${name}-active`, route.active_site);
    setText(`route-${name}-role`, route.active_role);
    const since = el(`route-${name}-since`);
    if (since.getAttribute('datetime') !== route.since) setTime(since, route.since);
    setText(`route-${name}-since-abs`, absolute(route.since));
    setText(`route-${name}-reason`, route.reason || '');
  }

  /// Mirrors cell() in dashboard.rs.
  function cellTitle(check) {
    let title = `${clock(check.checked_at)} UTC ${healthWord(check.healthy)}`;
    if (check.latency_ms !== null && check.latency_ms !== undefined) title += `, ${check.latency_ms} ms`;
    if (check.reason) title += `: ${check.reason}`;
    return title;
  }

  function renderService(service) {
    const id = `service-${service.role}-${service.kind}`;
    const health = healthWord(service.healthy);
    const badge = el(`${id}-health`);
    if (!badge) return;
    badge.className = `badge health-${health}`;
    setText(`${id}-health`, health);
    setText(`${id}-latency`, service.latency_ms === null ? '—' : `${service.latency_ms} ms`);
    const checked = el(`${id}-checked`);
    if (checked.getAttribute('datetime') !== (service.checked_at || '')) setTime(checked, service.checked_at);
    setText(`${id}-reason`, service.reason || '');
    const cells = service.recent
      .slice()
      .reverse()
      .map((check) => {
        const cell = make('span', `cell health-${healthWord(check.healthy)}`);
        cell.title = cellTitle(check);
        return cell;
      });
    el(`${id}-recent`).replaceChildren(...cells);
    // In a group: what each vantage point sees, which the leader counts.
    const vantages = (service.vantages || []).map((seen) => {
      const badge = make('span', `badge vantage health-${healthWord(seen.healthy)}`, seen.vantage);
      badge.title = `${seen.node}: ${cellTitle(seen)}`;
      return badge;
    });
    el(`${id}-vantages`)?.replaceChildren(...vantages);
  }

  function renderGroup(cluster) {
    const card = el('group');
    if (!card) return;
    card.hidden = !cluster;
    if (!cluster) return;
    setText('group-node', cluster.node);
    setText('group-leader', cluster.leader || 'none (no lease held)');
    setText('group-term', cluster.term);
    setText('group-quorum', cluster.quorum);
    const rows = cluster.nodes.map((node) => {
      const row = make('tr');
      row.dataset.testid = `group-node-${node.node}`;
      const role = node.leader ? 'leader' : 'follower';
      const seen = make('td');
      seen.append(timeNode(node.last_seen));
      row.append(make('td', '', node.node), make('td', '', node.vantage), make('td', `role-${role}`, role), seen);
      return row;
    });
    el('group-nodes').replaceChildren(...rows);
  }

  function renderConvergence(generation, phones) {
    setText('convergence-current', phones.on_current_generation);
    setText('convergence-total', phones.total);
    setText('convergence-generation', generation);
    const progress = el('convergence-progress');
    progress.max = Math.max(1, phones.total);
    progress.value = phones.on_current_generation;
    const vendors = document.querySelector('.vendors');
    for (const [vendor, count] of Object.entries(phones.by_vendor || {})) {
      if (!el(`convergence-${vendor}-current`)) {
        const item = make('li', '', `${vendor}: `);
        const current = make('span');
        current.dataset.testid = `convergence-${vendor}-current`;
        const total = make('span');
        total.dataset.testid = `convergence-${vendor}-total`;
        item.append(current, ' of ', total);
        vendors.append(item);
      }
      setText(`convergence-${vendor}-current`, count.on_current_generation);
      setText(`convergence-${vendor}-total`, count.total);
    }
    setText('convergence-stale', phones.stale);
    setText('stale-after', durationWords(phones.stale_after_seconds));
  }

  function renderStatus(status) {
    setText('generation', status.generation);
    for (const name of ROUTES) renderRoute(name, status.routes[name]);
    for (const service of status.services) renderService(service);
    renderConvergence(status.generation, status.phones);
    renderGroup(status.cluster);
    el('monitor-blind').hidden = !status.monitor_blind;
    const unavailable = el('store-unavailable');
    if (unavailable) unavailable.hidden = true;
    const store = status.store || { up: true };
    el('store-down').hidden = store.up;
    if (!store.up) setText('store-down-reason', store.error);
    const away = ROUTES.filter((name) => status.routes[name].state !== 'primary');
    document.title = away.length
      ? `${away.map((name) => `${name} ${status.routes[name].state}`).join(', ')} · switchback`
      : 'all primary · switchback';
  }

  /// Mirrors event_row() in dashboard.rs: the API says how an event reads (label,
  /// tone, summary); a blocked scanner's source is in the summary, nobody to name.
  function eventActor(event) {
    return event.kind === 'provisioning_scan' ? '' : `by ${event.actor}`;
  }

  function renderEvents(events) {
    const list = el('events');
    if (!list) return;
    const shown = Array.from(list.children, (item) => item.dataset.id).join(',');
    if (shown === events.map((event) => String(event.id)).join(',')) return;
    const items = events.map((event) => {
      const item = make('li', `event tone-${event.tone}`);
      item.dataset.testid = 'event';
      item.dataset.id = String(event.id);
      const when = make('div', 'when');
      when.append(timeNode(event.at), ' ', make('span', 'abs', absolute(event.at)));
      const what = make('div', 'what');
      what.append(make('span', 'kind', event.label), ' ', make('span', 'summary', event.summary));
      const why = make('div', 'why');
      why.append(make('span', 'reason', event.reason));
      const actor = eventActor(event);
      if (actor) why.append(' ', make('span', 'actor', actor));
      item.append(when, what, why);
      return item;
    });
    list.replaceChildren(...items);
    el('events-none').hidden = events.length > 0;
  }

  function renderStale(page) {
    const table = el('stale-phones');
    if (!table) return;
    const rows = page.phones.map((phone) => {
      const row = make('tr');
      const cell = (label, content, className) => {
        const td = make('td', className || '');
        td.dataset.label = label;
        td.append(content);
        return td;
      };
      row.append(
        cell('Name', phone.display_name),
        cell('MAC', phone.mac, 'mono'),
        cell('Phone', `${phone.vendor} ${phone.model}`),
        cell('Last seen', timeNode(phone.last_seen)),
        cell('Generation', phone.last_generation === null ? '—' : String(phone.last_generation), 'num'),
      );
      return row;
    });
    table.tBodies[0].replaceChildren(...rows);
    el('stale-list').hidden = rows.length === 0;
    staleShown = rows.length;
    const more = el('stale-more');
    more.hidden = page.total <= rows.length;
    more.textContent = `Showing ${rows.length} of ${page.total}.`;
  }

  function renderLab(lab) {
    renderInbox(lab.inbox || []);
    for (const role of ['primary', 'backup']) {
      const services = lab[role] || {};
      for (const [kind, state] of Object.entries(services)) {
        const badge = el(`demo-${role}-${kind}-state`);
        if (!badge) continue;
        badge.className = `badge lab-${state === 'broken' ? 'broken' : 'up'}`;
        setText(`demo-${role}-${kind}-state`, state);
        const brk = el(`demo-${role}-${kind}-break`);
        const mend = el(`demo-${role}-${kind}-mend`);
        if (brk) brk.disabled = state === 'broken';
        if (mend) mend.disabled = state !== 'broken';
      }
    }
  }

  /// The demo's webhook inbox: the alerts the demo's own webhook received, newest first.
  function renderInbox(deliveries) {
    const list = el('demo-inbox');
    if (!list) return;
    const items = deliveries.map((delivery) => {
      const item = make('li');
      item.append(timeNode(delivery.at), ' ', make('strong', '', delivery.kind), ' ', delivery.summary);
      return item;
    });
    if (!items.length) items.push(make('li', 'hint', 'no alert yet: break a primary service'));
    list.replaceChildren(...items);
  }

  function renderBlocks(blocks) {
    const table = el('blocks-table');
    if (!table) return;
    const rows = blocks.map((block) => {
      const row = make('tr');
      row.dataset.testid = `block-${block.source}`;
      const cell = (label, content, className) => {
        const td = make('td', className || '');
        td.dataset.label = label;
        td.append(content);
        return td;
      };
      const lift = make('button', 'lift', 'Lift');
      lift.type = 'button';
      lift.dataset.lift = block.source;
      lift.dataset.testid = `lift-${block.source}`;
      row.append(
        cell('Source', block.source, 'mono'),
        cell('Bad requests', String(block.bad_requests), 'num'),
        cell('Since', timeNode(block.since)),
        cell('Until', timeNode(block.until)),
        cell('', lift),
      );
      return row;
    });
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;
    el('blocks-none').hidden = rows.length !== 0;
  }

  // ---- pictures: plain SVG, no chart library ----

  const SVG_NS = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function titled(node, text) {
    node.append(svg('title', {}, text));
    return node;
  }

  function seconds(value) {
    if (value >= 5400) return `${Math.round(value / 3600)} h`;
    if (value >= 120) return `${Math.round(value / 60)} min`;
    return `${Math.round(value)} s`;
  }

  /// Phones on the generation against seconds since it started: one step line per
  /// vendor, the poll interval as a dashed vertical line.
  function renderCurve(curve) {
    const chart = el('convergence-curve');
    if (!chart) return;
    setText('curve-generation', curve.generation);
    const [W, H, left, right, top, bottom] = [600, 220, 44, 12, 12, 26];
    const vendors = Object.entries(curve.by_vendor || {});
    const lastX = Math.max(0, ...vendors.flatMap(([, v]) => v.points.map((p) => p[0])));
    const xMax = Math.max(lastX + (curve.bucket_seconds || 1), curve.poll_interval_seconds * 1.25, 10);
    const yMax = Math.max(1, ...vendors.map(([, v]) => v.total), ...vendors.flatMap(([, v]) => v.points.map((p) => p[1])));
    const x = (s) => left + (Math.min(s, xMax) / xMax) * (W - left - right);
    const y = (n) => H - bottom - (n / yMax) * (H - top - bottom);
    const parts = [
      svg('line', { class: 'axis', x1: left, y1: y(0), x2: W - right, y2: y(0) }),
      svg('line', { class: 'axis', x1: left, y1: y(0), x2: left, y2: top }),
      svg('text', { x: left - 4, y: y(0), 'text-anchor': 'end' }, '0'),
      svg('text', { x: left - 4, y: y(yMax) + 9, 'text-anchor': 'end' }, String(yMax)),
      svg('text', { x: left, y: H - 8 }, '0 s'),
      svg('text', { x: W - right, y: H - 8, 'text-anchor': 'end' }, seconds(xMax)),
    ];
    const poll = curve.poll_interval_seconds;
    parts.push(
      titled(svg('line', { class: 'poll-line', x1: x(poll), y1: y(0), x2: x(poll), y2: top, 'data-testid': 'curve-poll' }),
        `poll interval: ${poll} s`),
      svg('text', { x: x(poll) + 4, y: top + 10 }, `poll ${seconds(poll)}`),
    );
    const legend = [];
    for (const [vendor, line] of vendors) {
      let d = `M${x(0).toFixed(1)},${y(0).toFixed(1)}`;
      for (const [at, phones] of line.points) d += ` H${x(at).toFixed(1)} V${y(phones).toFixed(1)}`;
      d += ` H${x(xMax).toFixed(1)}`;
      const got = line.points.length ? line.points[line.points.length - 1][1] : 0;
      const path = svg('path', { class: `curve-line vendor-${vendor}`, d, 'data-testid': `curve-${vendor}` });
      parts.push(titled(path, `${vendor}: ${got} of ${line.total}`));
      const item = make('span', `vendor-${vendor}`);
      item.append(make('span', 'swatch'), `${vendor} ${got} of ${line.total}`);
      legend.push(item);
    }
    if (!curve.started_at) parts.push(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no phone has fetched it yet'));
    chart.replaceChildren(...parts);
    el('curve-legend')?.replaceChildren(...legend);
  }

  /// Each route's states over the window as coloured bands, the events as ticks.
  function renderTimeline(timeline) {
    const chart = el('timeline-chart');
    if (!chart) return;
    const [W, left, right, row, top] = [600, 44, 12, 30, 6];
    const from = Date.parse(timeline.from);
    const to = Date.parse(timeline.to);
    const span = Math.max(1, to - from);
    const x = (iso) => left + ((Math.min(Math.max(Date.parse(iso), from), to) - from) / span) * (W - left - right);
    const parts = [];
    ROUTES.forEach((name, i) => {
      const y = top + i * row;
      parts.push(svg('text', { x: left - 6, y: y + 15, 'text-anchor': 'end' }, name));
      // A short outage on a long window would be thinner than a pixel: bands off the
      // primary are at least 3 units wide, drawn over the primary ones.
      const bands = (timeline.routes[name] || []).slice().sort((a, b) => (a.state === 'primary' ? 0 : 1) - (b.state === 'primary' ? 0 : 1));
      for (const band of bands) {
        const width = Math.max(band.state === 'primary' ? 1 : 3, x(band.to) - x(band.from));
        const rect = svg('rect', {
          class: `band state-${band.state}`, x: x(band.from), y, width, height: row - 8, 'data-testid': `band-${name}`,
        });
        parts.push(titled(rect, `${name} ${band.state} on ${band.active_site}: ${absolute(band.from)} – ${absolute(band.to)}`));
      }
    });
    const ticksY = top + ROUTES.length * row;
    for (const event of timeline.events || []) {
      const at = x(event.at);
      const tick = svg('line', { class: `tick tone-${event.tone}`, x1: at, x2: at, y1: top, y2: ticksY + 4, 'data-testid': 'timeline-event' });
      parts.push(titled(tick, `${absolute(event.at)} ${event.label}: ${event.summary}`));
    }
    const axisY = ticksY + 8;
    parts.push(svg('line', { class: 'axis', x1: left, y1: axisY, x2: W - right, y2: axisY }));
    for (let h = 0; h <= 24; h += 6) {
      const at = left + (h / 24) * (W - left - right);
      const label = h === 24 ? 'now' : `-${24 - h} h`;
      const anchor = h === 0 ? 'start' : h === 24 ? 'end' : 'middle';
      parts.push(svg('text', { x: at, y: axisY + 14, 'text-anchor': anchor }, label));
    }
    chart.setAttribute('viewBox', `0 0 ${W} ${axisY + 20}`);
    chart.replaceChildren(...parts);
  }

  /// The pictures need a session. Asked for at once when the generation or a route
  /// moves; while phones come to the generation, again every PICTURES_MS until the
  /// store's curve (flushed every 2 s) counts as many phones as the status does; and
  /// every PICTURES_IDLE_MS regardless, so that the timeline moves on.
  const PICTURES_MS = 3000;
  const PICTURES_IDLE_MS = 30000;
  let picturesMoves = null;
  let picturesAt = 0;
  let picturesBehind = true;

  async function pollPictures(status) {
    if (!loggedIn || !el('convergence-curve')) return;
    const since = Date.now() - picturesAt;
    const moved = moves(status) !== picturesMoves;
    if (!moved && !(picturesBehind && since > PICTURES_MS) && since < PICTURES_IDLE_MS) return;
    picturesMoves = moves(status);
    picturesAt = Date.now();
    const [curve, timeline] = await Promise.all([
      getSessionJSON(`/api/generations/${encodeURIComponent(status.generation)}/convergence`),
      getSessionJSON('/api/timeline?since=24h'),
    ]);
    if (curve) {
      renderCurve(curve);
      const drawn = Object.values(curve.by_vendor || {})
        .map((v) => (v.points.length ? v.points[v.points.length - 1][1] : 0))
        .reduce((a, b) => a + b, 0);
      picturesBehind = drawn < status.phones.on_current_generation;
    }
    if (timeline) renderTimeline(timeline);
  }

  // ---- the stream, and the polls ----

  const streaming = () => stream !== null && stream.readyState === EventSource.OPEN;
  /// Without EventSource, or while the stream is broken, the status is polled.
  const statusPolled = () => stream === null || streamBroken;

  /// What a new generation or a route move changes on the session's panels.
  const moves = (status) => JSON.stringify([status.generation, status.routes]);

  function answered() {
    lastAnswer = Date.now();
    el('connection').hidden = true;
  }

  function showStatus(status) {
    const moved = latest !== null && moves(latest) !== moves(status);
    latest = status;
    renderStatus(status);
    answered();
    tickTimes();
    if (moved) poll();
  }

  function openStream() {
    if (typeof EventSource === 'undefined') return;
    stream = new EventSource('/api/stream');
    stream.addEventListener('open', () => {
      streamBroken = false;
    });
    stream.addEventListener('status', (event) => {
      streamBroken = false;
      let status;
      try {
        status = JSON.parse(event.data);
      } catch (err) {
        console.warn('switchback dashboard: a status event that is not JSON:', err);
        return;
      }
      showStatus(status);
    });
    stream.addEventListener('error', () => {
      // CONNECTING: the browser reconnects by itself. CLOSED: the server refused the
      // stream (503 when too many are open): try again later. Either way, poll meanwhile.
      streamBroken = true;
      if (stream.readyState === EventSource.CLOSED) {
        stream.close();
        setTimeout(openStream, STREAM_RETRY_MS);
      }
      poll();
    });
  }

  /// Whatever the stream does not bring: the status while the stream is down, and the
  /// panels that need a session.
  async function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    try {
      const [status, events, lab, blocks] = await Promise.all([
        statusPolled() ? getJSON('/api/status') : Promise.resolve(null),
        getSessionJSON('/api/events?limit=20'),
        demo ? getJSON('/demo') : Promise.resolve(null),
        getSessionJSON('/api/provisioning/blocks'),
      ]);
      // The stream may have come back while this poll was out: it is newer.
      if (status && statusPolled()) {
        latest = status;
        renderStatus(status);
      }
      if (events) renderEvents(events.events);
      if (blocks) renderBlocks(blocks.blocks);
      if (lab) renderLab(lab);
      if (latest) await pollStale(latest);
      if (latest) await pollPictures(latest);
      answered();
    } catch (err) {
      if (statusPolled()) el('connection').hidden = false;
      console.warn('switchback dashboard: refresh failed:', err);
    } finally {
      polling = false;
      tickTimes();
      if (pollAgain) {
        pollAgain = false;
        poll();
      } else {
        timer = setTimeout(poll, POLL_MS);
      }
    }
  }

  async function pollStale(status) {
    const staleChanged = staleCount !== status.phones.stale;
    staleCount = status.phones.stale;
    const wantStale = loggedIn && (status.phones.stale > 0 || staleShown > 0);
    if (wantStale && (staleChanged || Date.now() - staleFetchedAt > STALE_MS)) {
      staleFetchedAt = Date.now();
      const stale = await getSessionJSON('/api/phones?stale=true&limit=50');
      if (stale) renderStale(stale);
    }
  }

  // ---- buttons ----

  /// An answer under the buttons, stamped with the time so an old one is not taken for new.
  function showResult(node, ok, text) {
    node.className = `result ${ok ? 'ok' : 'error'}`;
    node.textContent = `${clock(new Date(serverNow()).toISOString())} ${text}`;
    clearTimeout(node.clearTimer);
    node.clearTimer = setTimeout(() => { node.textContent = ''; }, RESULT_MS);
  }

  async function postJSON(url, headers, payload) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: payload === undefined ? '' : JSON.stringify(payload),
    });
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    return { response, data };
  }

  function confirmation(route, action) {
    if (action === 'failover') {
      return `Fail ${route} over to ${sites.backup}? Every phone gets a new file and re-registers; the route holds there until Resume.`;
    }
    if (action === 'failback') {
      return `Fail ${route} back to ${sites.primary}? Every phone gets a new file and re-registers; the route holds there until Resume.`;
    }
    return null;
  }

  async function operate(button) {
    const form = button.closest('form[data-route]');
    const route = form.dataset.route;
    const action = button.dataset.action;
    const result = el(`action-${route}-result`);
    const question = confirmation(route, action);
    if (question && !window.confirm(question)) return;
    const input = form.elements.namedItem('reason');
    const reason = input.value.trim();
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    showResult(result, true, `${action}…`);
    try {
      const { response, data } = await postJSON(
        `/api/routes/${encodeURIComponent(route)}/${encodeURIComponent(action)}`,
        { 'X-CSRF-Token': csrf },
        reason ? { reason } : {},
      );
      if (response.ok) {
        showResult(result, true, `${action} done by ${data.actor}: ${data.state} on ${data.active_site}, mode ${data.mode}`);
        input.value = '';
      } else {
        const why = data.error || response.statusText;
        const hint = response.status === 401 ? ' (reload the page to log in again)' : '';
        showResult(result, false, `${action} refused (${response.status}): ${why}${hint}`);
      }
    } catch (err) {
      showResult(result, false, `${action} failed: switchback did not answer (${err.message})`);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      poll();
    }
  }

  async function labAction(button) {
    const [role, kind, action] = button.dataset.lab.split('/');
    const result = el('demo-result');
    button.disabled = true;
    try {
      const url = `/demo/${encodeURIComponent(role)}/${encodeURIComponent(kind)}/${encodeURIComponent(action)}`;
      const { response, data } = await postJSON(url, {});
      if (response.ok) showResult(result, true, `${role} ${kind}: ${data.state}`);
      else showResult(result, false, `${role} ${kind}: ${data.error || response.statusText}`);
    } catch (err) {
      showResult(result, false, `${role} ${kind}: switchback did not answer (${err.message})`);
    } finally {
      button.disabled = false;
      poll();
    }
  }

  async function liftBlock(button) {
    const source = button.dataset.lift;
    const result = el('blocks-result');
    if (!window.confirm(`Lift the block on ${source}? It may fetch phone files again at once.`)) return;
    button.disabled = true;
    try {
      const response = await fetch(`/api/provisioning/blocks/${encodeURIComponent(source)}`, {
        method: 'DELETE',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': csrf },
      });
      let data = {};
      try { data = await response.json(); } catch { data = {}; }
      if (response.ok) showResult(result, true, `block on ${source} lifted by ${data.actor}`);
      else showResult(result, false, `lift refused (${response.status}): ${data.error || response.statusText}`);
    } catch (err) {
      showResult(result, false, `lift failed: switchback did not answer (${err.message})`);
    } finally {
      poll();
    }
  }

  async function scan(button) {
    const result = el('demo-result');
    button.disabled = true;
    try {
      const { response, data } = await postJSON('/demo/scan', {});
      if (response.ok) {
        showResult(result, true, `scanner on ${data.source}: ${data.requests} requests, blocked after ${data.blocked_after}`);
      } else {
        showResult(result, false, `scan: ${data.error || response.statusText}`);
      }
    } catch (err) {
      showResult(result, false, `scan: switchback did not answer (${err.message})`);
    } finally {
      button.disabled = false;
      setTimeout(poll, 500);
    }
  }

  document.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button') : null;
    if (!button || button.disabled) return;
    if (button.dataset.action && button.closest('form[data-route]')) operate(button);
    else if (button.dataset.lab) labAction(button);
    else if (button.dataset.lift) liftBlock(button);
    else if (button.dataset.scan !== undefined) scan(button);
  });

  // Enter in a reason box must not submit the form (that would reload the page).
  for (const form of document.querySelectorAll('form[data-route]')) {
    form.addEventListener('submit', (event) => event.preventDefault());
  }

  setInterval(tickTimes, 1000);
  openStream();
  poll();
})();
