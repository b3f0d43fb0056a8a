// binoc browser viewer: a WHEP client for the streamer's two video tracks (left eye, right
// eye), frame markers and clock sync on the DataChannel "binoc", a HUD, and WebXR.
//
// Desktop: both eyes side by side. Quest Browser: "Enter VR" shows the left track to the left
// eye only and the right track to the right eye only (a head-locked quad per eye).
//
// Reconnects by itself: a failed WHEP POST (network error, 5xx), a connection that fails or
// stays disconnected for 2 s, or a closed data channel ends the peer connection (closed, its
// WHEP resource DELETEd) and a new one is tried after 0.5 s, doubling to 5 s, reset once
// connected. 400, 401 and 403 stop with the reason.
//
// Markers: for every frame shown, the RTP timestamp it came with, when its last packet arrived,
// when the decoded frame went to the compositor, and when it is expected on the display, all
// in performance.now() milliseconds; the streamer maps them onto its own clock with the
// ping/pong clock sync and prints glass-to-glass = display − capture.
'use strict';

const params = new URLSearchParams(location.search);
const token = params.get('token');
const EYES = ['left', 'right'];

const binoc = {
  conn: null, // the current connection: {id, pc, dc, resource, dead, …}
  videos: EYES.map((e) => document.getElementById(e)),
  // Last pixel code read per eye: [eye, frame] or null.
  codes: [null, null],
  codesRead: [0, 0],
  markersSent: 0,
  streamer: null, // the last stats message from the streamer
  inbound: [null, null], // getStats() inbound-rtp per eye
  xr: null,
  error: null, // why the page stopped for good (no more reconnecting)
  connects: 0, // connections that reached connectionState 'connected'
  reconnectAttempts: 0, // connections tried after the first
  // The last 20 connections: {id, connected, decoded: framesDecoded per eye, ended: why}.
  connections: [],
  statusLog: [], // [performance.now(), text] of the last 200 statuses
};
window.binoc = binoc;

// A video keeps the shape of its stream's frames, not of the 2×2 black frame an ended track
// leaves (between connections).
for (const v of binoc.videos) {
  v.addEventListener('resize', () => {
    if (v.videoWidth >= 16 && v.videoHeight >= 16) v.style.aspectRatio = `${v.videoWidth} / ${v.videoHeight}`;
  });
}

const statusEl = document.getElementById('status');
// kind: undefined, 'warn' (reconnecting) or 'error' (stopped; also a bare `true`).
function status(text, kind) {
  if (kind === true) kind = 'error';
  statusEl.textContent = text;
  statusEl.className = kind || '';
  if (kind === 'error') binoc.error = text;
  binoc.statusLog.push([performance.now(), text]);
  if (binoc.statusLog.length > 200) binoc.statusLog.shift();
}

// ---- pixel code (shared-proto/src/pixel_code.rs, read from the top band of a frame) ----
const CELLS = 40;
const SYNC_HEAD = [1, 0];
const SYNC_TAIL = [0, 1, 1, 0, 1];

function crc8(data) {
  let crc = 0;
  for (let i = 24; i >= 0; i--) {
    const bit = (data >>> i) & 1;
    const top = (crc & 0x80) !== 0;
    crc = (crc << 1) & 0xff;
    if (top !== (bit === 1)) crc ^= 0x07;
  }
  return crc;
}

function bandHeight(h) {
  return Math.min(16 * Math.max(Math.floor(h / 360), 1), h & ~1);
}

const codeCanvas = document.createElement('canvas');
codeCanvas.width = CELLS * 4;
codeCanvas.height = 2;
const codeCtx = codeCanvas.getContext('2d', { willReadFrequently: true });

// Reads [eye, frame] from the video's current frame, or null.
function readCode(video) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  const band = bandHeight(h);
  if (w < CELLS * 2 || band < 4) return null;
  // Cleared first: the canvas is shared by both eyes, and a video with no frame to give draws
  // nothing, which would leave the other eye's code to be read.
  codeCtx.clearRect(0, 0, codeCanvas.width, codeCanvas.height);
  codeCtx.drawImage(video, 0, band / 4, w, band / 2, 0, 0, codeCanvas.width, codeCanvas.height);
  const px = codeCtx.getImageData(0, 0, codeCanvas.width, 1).data;
  const bits = [];
  for (let i = 0; i < CELLS; i++) {
    // The two middle pixels of the cell's four.
    const g = (px[(i * 4 + 1) * 4 + 1] + px[(i * 4 + 2) * 4 + 1]) / 2;
    bits.push(g >= 128 ? 1 : 0);
  }
  return decodeBits(bits);
}

// The 40 cells (1 = white) → [eye, frame], or null without valid sync and CRC.
function decodeBits(bits) {
  if (bits[0] !== SYNC_HEAD[0] || bits[1] !== SYNC_HEAD[1]) return null;
  for (let i = 0; i < 5; i++) if (bits[35 + i] !== SYNC_TAIL[i]) return null;
  let payload = 0;
  for (let i = 2; i < 27; i++) payload = payload * 2 + bits[i];
  let crc = 0;
  for (let i = 27; i < 35; i++) crc = crc * 2 + bits[i];
  if (crc !== crc8(payload)) return null;
  return [Math.floor(payload / 0x1000000), payload & 0xffffff];
}
binoc.decodeBits = decodeBits;

// ---- DataChannel messages ----
function send(msg) {
  const dc = binoc.conn && binoc.conn.dc;
  if (dc && dc.readyState === 'open') dc.send(JSON.stringify(msg));
}

function onMessage(ev) {
  const t1 = performance.now();
  let msg;
  try {
    msg = JSON.parse(ev.data);
  } catch (e) {
    return;
  }
  if (msg.t === 'ping') {
    send({ t: 'pong', id: msg.id, t0: msg.t0, t1, t2: performance.now() });
  } else if (msg.t === 'stats') {
    binoc.streamer = msg;
    addSample(t1, msg);
  }
}

// ---- frames: markers, pixel codes, XR upload ----
// Per eye, the newest frame not yet uploaded to the XR layer (only the newest is kept, so an
// older frame can never be shown after a newer one).
const xrPending = [null, null];
// Per eye, the pending requestVideoFrameCallback handle: one reader per <video> however often
// its track is replaced.
const frameCallbacks = [null, null];

// (Re)starts the frame reader of an eye's <video>; called for every connection.
function watchFrames(eye) {
  const video = binoc.videos[eye];
  if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype)) {
    status('this browser has no requestVideoFrameCallback: no latency markers', true);
    return;
  }
  if (frameCallbacks[eye] !== null) video.cancelVideoFrameCallback(frameCallbacks[eye]);
  const onFrame = (now, md) => {
    // A camera's picture carries no pixel code (the streamer says so in its stats): no
    // read-back per frame then.
    const coded = !binoc.streamer || binoc.streamer.eyes[eye].pixel_code !== false;
    const code = coded ? readCode(video) : null;
    if (code) {
      binoc.codes[eye] = code;
      binoc.codesRead[eye]++;
    }
    if (md.rtpTimestamp !== undefined && md.receiveTime !== undefined) {
      const m = {
        t: 'm',
        eye,
        rtp: md.rtpTimestamp >>> 0,
        code,
        recv: md.receiveTime,
        pres: md.presentationTime,
        disp: md.expectedDisplayTime,
      };
      if (binoc.xr) {
        xrPending[eye] = m; // the display time is the XR frame's, known at upload
      } else {
        send(m);
        binoc.markersSent++;
      }
    }
    frameCallbacks[eye] = video.requestVideoFrameCallback(onFrame);
  };
  frameCallbacks[eye] = video.requestVideoFrameCallback(onFrame);
}

// ---- WHEP, and reconnecting ----
const RETRY_FIRST_MS = 500; // the first retry; doubles per failure…
const RETRY_MAX_MS = 5000; // …up to this
const STABLE_MS = 10000; // a connection up this long resets the backoff
const DISCONNECTED_MS = 2000; // 'disconnected' this long: lost
const CONNECT_MS = 15000; // from the answer to 'connected' (the streamer gives up after 10 s)

let failures = 0; // attempts failed since the last connection
let retry = null; // the scheduled attempt: {timer, ticker}
let leaving = false; // pagehide: never reconnect
let nextId = 1;

function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// A new peer connection, its tracks on the same <video> elements.
async function connect() {
  let pc;
  try {
    pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  } catch (e) {
    return status(`WebRTC: ${e.message}`, 'error');
  }
  const conn = {
    id: nextId++,
    pc,
    dc: null,
    resource: null,
    dead: false,
    post: new AbortController(),
    openTimer: null,
    lostTimer: null,
    last: [null, null], // the previous inbound-rtp per eye (Mbit/s)
    rec: { id: 0, connected: false, decoded: [0, 0], ended: null },
  };
  conn.rec.id = conn.id;
  binoc.conn = conn;
  binoc.connections.push(conn.rec);
  if (binoc.connections.length > 20) binoc.connections.shift();
  binoc.inbound = [null, null];
  xrPending.fill(null); // markers of the old connection's frames
  try {
    const transceivers = EYES.map(() => pc.addTransceiver('video', { direction: 'recvonly' }));
    transceivers.forEach((t, eye) => {
      // Render as soon as decoded: no jitter-buffer smoothing (Chrome 114+).
      if ('jitterBufferTarget' in t.receiver) t.receiver.jitterBufferTarget = 0;
      binoc.videos[eye].srcObject = new MediaStream([t.receiver.track]);
      binoc.videos[eye].play().catch(() => {});
      watchFrames(eye);
    });
    conn.dc = pc.createDataChannel('binoc', { ordered: false });
    conn.dc.onmessage = onMessage;
    conn.dc.onclose = () => lost(conn, 'streamer lost (data channel closed)');
    pc.onconnectionstatechange = () => onState(conn);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (conn.dead) return;
    let res;
    let body;
    try {
      const headers = { 'Content-Type': 'application/sdp', ...authHeaders() };
      res = await fetch('/whep', { method: 'POST', headers, body: offer.sdp, signal: conn.post.signal });
      // Known before the body, so that a teardown from now on DELETEs the session.
      if (res.status === 201) conn.resource = res.headers.get('Location');
      if (conn.dead) return deleteSession(conn);
      body = await res.text();
    } catch (e) {
      // No answer (streamer down, network), or the abort of a teardown.
      if (!conn.dead) lost(conn, 'streamer unreachable');
      return;
    }
    if (conn.dead) return;
    if (res.status !== 201) return refused(conn, res, body.trim());
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    conn.openTimer = setTimeout(() => lost(conn, `no connection within ${CONNECT_MS / 1000} s`), CONNECT_MS);
  } catch (e) {
    // The browser refused the offer or the answer: trying again would not help.
    if (!conn.dead) fail(conn, `WebRTC: ${e.message}`);
  }
}

// A WHEP POST answered other than 201: 5xx (503: all viewer slots busy), 408 and 429 are
// tried again; any other 4xx stops.
function refused(conn, res, body) {
  const code = res.status;
  if (code >= 500 || code === 408 || code === 429) {
    const why = code === 503 ? `all viewer slots busy (503: ${body})` : `streamer answered ${code}: ${body}`;
    const after = Number(res.headers.get('Retry-After'));
    return lost(conn, why, after > 0 ? Math.min(after, 30) * 1000 : 0);
  }
  if (code === 401) {
    // The streamer says which: missing, wrong or stale, or expired.
    fail(conn, `${body || (token ? 'wrong token' : 'the streamer needs a token')} (401)`);
  } else if (code === 403) {
    fail(conn, `refused (403): ${body}`);
  } else if (code === 400) {
    fail(conn, `the streamer refused the offer (400): ${body}`);
  } else {
    fail(conn, `WHEP POST answered ${code}: ${body}`);
  }
}

function onState(conn) {
  if (conn !== binoc.conn || conn.dead || leaving) return;
  const state = conn.pc.connectionState;
  if (state === 'connected') {
    clearTimeout(conn.openTimer);
    clearTimeout(conn.lostTimer);
    conn.lostTimer = null;
    if (!conn.rec.connected) {
      conn.rec.connected = true;
      binoc.connects++;
      // The backoff starts over only once this connection has held: one that connects and
      // drops at once must not be retried every half second for ever.
      conn.stableTimer = setTimeout(() => {
        if (!conn.dead) failures = 0;
      }, STABLE_MS);
    }
    document.body.classList.remove('lost');
    status('connected');
  } else if (state === 'disconnected') {
    status('connection interrupted…', 'warn');
    if (!conn.lostTimer) conn.lostTimer = setTimeout(() => lost(conn, 'streamer lost'), DISCONNECTED_MS);
  } else if (state === 'failed' || state === 'closed') {
    lost(conn, `streamer lost (connection ${state})`);
  } else {
    status(conn.id > 1 ? 'reconnecting…' : 'connecting…', conn.id > 1 ? 'warn' : undefined);
  }
}

// Ends a connection: no more events from it, its peer connection closed, its WHEP session
// DELETEd (best effort: the streamer may be gone).
function stop(conn, why) {
  conn.dead = true;
  conn.rec.ended = why;
  clearTimeout(conn.openTimer);
  clearTimeout(conn.lostTimer);
  clearTimeout(conn.stableTimer);
  conn.post.abort();
  deleteSession(conn);
  conn.pc.onconnectionstatechange = null;
  if (conn.dc) conn.dc.onclose = conn.dc.onmessage = null;
  conn.pc.close();
  if (binoc.conn === conn) {
    binoc.inbound = [null, null];
    binoc.streamer = null; // no stale numbers on the HUD
  }
  document.body.classList.add('lost');
}

function deleteSession(conn) {
  if (!conn.resource) return;
  fetch(conn.resource, { method: 'DELETE', headers: authHeaders(), keepalive: true }).catch(() => {});
  conn.resource = null;
}

// The current connection is lost: end it and try again after the backoff (at least
// `atLeastMs`, a 503's Retry-After).
function lost(conn, why, atLeastMs = 0) {
  if (conn !== binoc.conn || conn.dead || leaving) return;
  stop(conn, why);
  const ms = Math.max(Math.min(RETRY_FIRST_MS * 2 ** failures, RETRY_MAX_MS), atLeastMs);
  failures++;
  const at = performance.now() + ms;
  const text = () => `${why} — reconnecting in ${(Math.max(at - performance.now(), 0) / 1000).toFixed(1)} s (attempt ${failures})`;
  status(text(), 'warn');
  cancelRetry();
  retry = {
    ticker: setInterval(() => (statusEl.textContent = text()), 100),
    timer: setTimeout(() => {
      cancelRetry();
      binoc.reconnectAttempts++;
      status('reconnecting…', 'warn');
      connect();
    }, ms),
  };
}

// Stops for good, with the reason on screen.
function fail(conn, why) {
  if (conn !== binoc.conn || conn.dead) return;
  stop(conn, why);
  status(why, 'error');
}

function cancelRetry() {
  if (!retry) return;
  clearTimeout(retry.timer);
  clearInterval(retry.ticker);
  retry = null;
}

// A closed tab releases its viewer slot at once. Only the DELETE: the streamer ends the session
// on it (closing the peer connection here could end it first, as "peer connection closed").
window.addEventListener('pagehide', () => {
  leaving = true;
  cancelRetry();
  if (binoc.conn) deleteSession(binoc.conn);
});
// Back from the back/forward cache: that session was DELETEd; a new one.
window.addEventListener('pageshow', (ev) => {
  if (!ev.persisted) return;
  leaving = false;
  if (binoc.conn && !binoc.conn.dead) stop(binoc.conn, 'page hidden');
  if (!retry && !binoc.error) connect();
});

// ---- HUD ----
const hud = document.getElementById('hud');
const panel = document.getElementById('panel');
let hudOn = true;
document.getElementById('toggle-hud').onclick = () => {
  hudOn = !hudOn;
  panel.hidden = !hudOn;
  if (hudOn) drawPageGraph();
};

async function pollStats() {
  const conn = binoc.conn;
  if (conn && !conn.dead) {
    const stats = await conn.pc.getStats();
    // framesDecoded and bytes count per peer connection: only the current one's.
    if (conn === binoc.conn && !conn.dead) {
      const mids = conn.pc.getTransceivers().map((t) => t.mid);
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        const eye = mids.indexOf(s.mid);
        if (eye < 0 || eye > 1) return;
        const prev = conn.last[eye];
        const mbps = prev ? ((s.bytesReceived - prev.bytesReceived) * 8) / (s.timestamp - prev.timestamp) / 1e3 : 0;
        binoc.inbound[eye] = { ...s, mbps, connection: conn.id };
        conn.rec.decoded[eye] = s.framesDecoded ?? 0;
        conn.last[eye] = s;
      });
    }
  }
  if (hudOn) hud.textContent = hudText();
}

function f1(x) {
  return x === null || x === undefined ? '–' : Number(x).toFixed(1);
}

function hudText() {
  const st = binoc.streamer;
  const lines = ['eye    fps  Mbit/s  decoded  dropped  lost  g2g p50/p99 ms  capture→decoded p50 ms'];
  for (let eye = 0; eye < 2; eye++) {
    const s = binoc.inbound[eye] || {};
    const e = st ? st.eyes[eye] : {};
    lines.push(
      `${EYES[eye].padEnd(5)} ${f1(s.framesPerSecond).padStart(5)} ${f1(s.mbps).padStart(7)} ` +
        `${String(s.framesDecoded ?? 0).padStart(8)} ${String((s.framesDropped ?? 0) + (e.dropped ?? 0)).padStart(8)} ` +
        `${String(s.packetsLost ?? 0).padStart(5)} ${`${f1(e.g2g_p50)}/${f1(e.g2g_p99)}`.padStart(15)} ${f1(e.latency_p50).padStart(23)}`,
    );
  }
  if (st) {
    const names = ['capture→encode', 'encode', 'send queue', 'network', 'decode+render'];
    lines.push('');
    lines.push('stage p50 ms   ' + names.map((n) => n.padStart(14)).join(''));
    for (let eye = 0; eye < 2; eye++) {
      lines.push(`${EYES[eye].padEnd(14)} ` + st.eyes[eye].stages_p50.map((v) => f1(v).padStart(14)).join(''));
    }
    lines.push('');
    lines.push(
      `link estimate ${f1(st.estimate_mbps)} Mbit/s, encoder target ${f1(st.eyes[0].target_mbps)}+${f1(st.eyes[1].target_mbps)} Mbit/s, ` +
        `clock ±${f1(st.clock_uncertainty_ms)} ms, keyframe requests ${st.eyes[0].keyframe_requests}+${st.eyes[1].keyframe_requests}`,
    );
  }
  return lines.join('\n');
}

// ---- the graph: the last 10 s of the streamer's medians ----
// The page cannot plot glass-to-glass per frame: a frame's capture time is on the streamer's
// clock, and the clock estimate that maps it stays with the streamer. Plotted instead: what each
// `stats` message says (medians of the last 120 frames, once a second), a bar per eye per
// message (its stages stacked, a negative network stage below zero) and each eye's
// glass-to-glass p50 as a line.
const GRAPH_MS = 10000;
const GRAPH_W = 480;
const GRAPH_H = 170;
const STAGES = ['capture→encode', 'encode', 'send queue', 'network', 'decode+render'];
const STAGE_COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f'];
const G2G_STYLES = [
  { color: '#ffffff', dash: [] },
  { color: '#edc948', dash: [5, 3] },
];
const samples = []; // {t, eyes: [{g2g, stages}]}, oldest first; an empty median (0) is null

function addSample(t, msg) {
  if (!Array.isArray(msg.eyes) || msg.eyes.length < 2) return;
  const eyes = msg.eyes.map((e) => ({
    g2g: e.g2g_p50 > 0 ? e.g2g_p50 : null,
    stages: Array.isArray(e.stages_p50) && e.stages_p50.some((v) => v) ? e.stages_p50 : null,
  }));
  samples.push({ t, eyes });
  while (samples[0].t < t - GRAPH_MS - 2000) samples.shift();
}

// The smallest of 1, 2, 5 × 10^k at least x (> 0).
function niceStep(x) {
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 2, 5, 10].find((m) => m * p >= x) * p;
}

// Draws the graph into ctx's (0, 0, w, h) in CSS pixels.
function drawGraph(ctx, w, h, now) {
  const L = 30; // y labels
  const R = 110; // legend
  const T = 14; // title
  const B = 14; // x labels
  const pw = w - L - R;
  const ph = h - T - B;
  const t0 = now - GRAPH_MS;
  const shown = samples.filter((s) => s.t > t0);
  let hi = 10;
  let lo = 0;
  for (const s of shown) {
    for (const e of s.eyes) {
      if (e.g2g !== null) hi = Math.max(hi, e.g2g);
      if (e.stages) {
        hi = Math.max(hi, e.stages.reduce((a, v) => a + Math.max(v, 0), 0));
        lo = Math.min(lo, e.stages.reduce((a, v) => a + Math.min(v, 0), 0));
      }
    }
  }
  // Gridlines a nice step apart from 0 up; below 0 only the room a negative stage needs.
  const step = niceStep((hi - lo) / 5);
  hi = Math.ceil(hi / step) * step;
  lo *= 1.1;
  const y = (v) => T + (ph * (hi - v)) / (hi - lo);
  const x = (t) => L + (pw * (t - t0)) / GRAPH_MS;

  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = 'rgba(24, 24, 24, 0.85)';
  ctx.fillRect(0, 0, w, h);
  ctx.font = '10px ui-monospace, monospace';
  ctx.lineWidth = 1;
  ctx.setLineDash([]);
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = Math.ceil(lo / step) * step; v <= hi + step / 2; v += step) {
    const yv = Math.round(y(v)) + 0.5;
    ctx.strokeStyle = v === 0 ? '#777' : '#333';
    ctx.beginPath();
    ctx.moveTo(L, yv);
    ctx.lineTo(L + pw, yv);
    ctx.stroke();
    ctx.fillStyle = '#aaa';
    ctx.fillText(String(v), L - 3, yv);
  }
  ctx.textBaseline = 'top';
  ctx.textAlign = 'left';
  ctx.fillText('ms · p50 of the last 120 frames, once a second', L, 1, w - L - 2);
  ctx.fillText('−10 s', L, T + ph + 2);
  ctx.textAlign = 'center';
  ctx.fillText('−5 s', L + pw / 2, T + ph + 2);
  ctx.textAlign = 'right';
  ctx.fillText('now', L + pw, T + ph + 2);

  ctx.save();
  ctx.beginPath();
  ctx.rect(L, T, pw, ph);
  ctx.clip();
  // Each message's bars fill the second before it: left eye, then right eye.
  const slot = pw / (GRAPH_MS / 1000);
  for (const s of shown) {
    for (let eye = 0; eye < 2; eye++) {
      const st = s.eyes[eye].stages;
      if (!st) continue;
      const bx = x(s.t) - slot + (eye * slot) / 2 + 1;
      let up = 0;
      let down = 0;
      st.forEach((v, i) => {
        if (!v) return;
        ctx.fillStyle = STAGE_COLORS[i];
        const from = v > 0 ? up : down;
        ctx.fillRect(bx, y(from + v), slot / 2 - 2, y(from) - y(from + v));
        if (v > 0) up += v;
        else down += v;
      });
    }
  }
  // Glass-to-glass: a line through messages a second apart, broken where one is missing.
  for (let eye = 0; eye < 2; eye++) {
    ctx.strokeStyle = ctx.fillStyle = G2G_STYLES[eye].color;
    ctx.setLineDash(G2G_STYLES[eye].dash);
    ctx.lineWidth = 2;
    ctx.beginPath();
    let prev = null;
    for (const s of shown) {
      const v = s.eyes[eye].g2g;
      if (v === null) {
        prev = null;
        continue;
      }
      if (prev !== null && s.t - prev < 1500) ctx.lineTo(x(s.t), y(v));
      else ctx.moveTo(x(s.t), y(v));
      ctx.fillRect(x(s.t) - 1.5, y(v) - 1.5, 3, 3);
      prev = s.t;
    }
    ctx.stroke();
  }
  ctx.restore();
  ctx.setLineDash([]);
  if (shown.length === 0) {
    ctx.fillStyle = '#888';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText('no stats from the streamer', L + pw / 2, T + ph / 2);
  }

  // Legend.
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  const lx = L + pw + 8;
  let ly = T + 6;
  STAGES.forEach((name, i) => {
    ctx.fillStyle = STAGE_COLORS[i];
    ctx.fillRect(lx, ly - 4, 10, 8);
    ctx.fillStyle = '#ccc';
    ctx.fillText(name, lx + 14, ly, R - 22);
    ly += 13;
  });
  ctx.fillStyle = '#888';
  ctx.fillText('bars: left | right', lx, ly, R - 8);
  ly += 16;
  G2G_STYLES.forEach((g, eye) => {
    ctx.strokeStyle = g.color;
    ctx.setLineDash(g.dash);
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(lx, ly);
    ctx.lineTo(lx + 10, ly);
    ctx.stroke();
    ctx.fillStyle = '#ccc';
    ctx.fillText(`g2g ${EYES[eye]}`, lx + 14, ly, R - 22);
    ly += 13;
  });
  ctx.setLineDash([]);
}

const graphCanvas = document.getElementById('graph');
const graphCtx = graphCanvas.getContext('2d');

function drawPageGraph() {
  const dpr = window.devicePixelRatio || 1;
  if (graphCanvas.width !== Math.round(GRAPH_W * dpr)) {
    graphCanvas.width = Math.round(GRAPH_W * dpr);
    graphCanvas.height = Math.round(GRAPH_H * dpr);
  }
  graphCtx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawGraph(graphCtx, GRAPH_W, GRAPH_H, performance.now());
}

// The HUD in the immersive session: a few lines of text above the graph.
const XR_HUD_W = 1024;
const XR_HUD_H = 512;
const XR_HUD_MS = 250; // redrawn and uploaded this often

function drawXrHud(ctx) {
  ctx.clearRect(0, 0, XR_HUD_W, XR_HUD_H);
  ctx.fillStyle = 'rgba(0, 0, 0, 0.6)';
  ctx.fillRect(0, 0, XR_HUD_W, XR_HUD_H);
  const st = binoc.streamer;
  ctx.font = '24px ui-monospace, monospace';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  const colors = { warn: '#fc6', error: '#f66' };
  ctx.fillStyle = colors[statusEl.className] || '#ddd';
  ctx.fillText(statusEl.textContent, 16, 10, XR_HUD_W - 32);
  ctx.fillStyle = '#ddd';
  for (let eye = 0; eye < 2; eye++) {
    const s = binoc.inbound[eye] || {};
    const e = st ? st.eyes[eye] : {};
    const text =
      `${EYES[eye].padEnd(5)} g2g ${f1(e.g2g_p50)}/${f1(e.g2g_p99)} ms  ${f1(s.framesPerSecond)} fps  ` +
      `${f1(s.mbps)} Mbit/s  dropped ${(s.framesDropped ?? 0) + (e.dropped ?? 0)}  lost ${s.packetsLost ?? 0}`;
    ctx.fillText(text, 16, 42 + eye * 32, XR_HUD_W - 32);
  }
  if (st) {
    ctx.fillText(`link ${f1(st.estimate_mbps)} Mbit/s  clock ±${f1(st.clock_uncertainty_ms)} ms`, 16, 106, XR_HUD_W - 32);
  }
  ctx.save();
  ctx.translate((XR_HUD_W - 2 * GRAPH_W) / 2, XR_HUD_H - 2 * GRAPH_H - 2);
  ctx.scale(2, 2);
  drawGraph(ctx, GRAPH_W, GRAPH_H, performance.now());
  ctx.restore();
}

// ---- WebXR ----
const VS = `#version 300 es
in vec2 pos;
uniform mat4 proj;
uniform vec2 center;
uniform vec2 halfSize;
uniform float dist;
out vec2 uv;
void main() {
  uv = vec2(pos.x * 0.5 + 0.5, 0.5 - pos.y * 0.5);
  gl_Position = proj * vec4(center + pos * halfSize, -dist, 1.0);
}`;
const FS = `#version 300 es
precision mediump float;
in vec2 uv;
uniform sampler2D tex;
out vec4 color;
void main() { color = texture(tex, uv); }`;

function compile(gl, type, src) {
  const s = gl.createShader(type);
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
  return s;
}

// Height / width of a video's frames (16:9 until it has one).
function aspectOf(v) {
  return v.videoWidth && v.videoHeight ? v.videoHeight / v.videoWidth : 9 / 16;
}

async function enterVR() {
  const session = await navigator.xr.requestSession('immersive-vr');
  const canvas = document.createElement('canvas');
  const gl = canvas.getContext('webgl2', { xrCompatible: true });
  await session.updateRenderState({ baseLayer: new XRWebGLLayer(session, gl) });
  const space = await session.requestReferenceSpace('local');
  const prog = gl.createProgram();
  gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VS));
  gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FS));
  gl.linkProgram(prog);
  const buf = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, buf);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const textures = EYES.map(() => {
    const t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, t);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    return t;
  });
  // The HUD's texture, drawn and uploaded every XR_HUD_MS.
  const hudCanvas = document.createElement('canvas');
  hudCanvas.width = XR_HUD_W;
  hudCanvas.height = XR_HUD_H;
  const hudCtx = hudCanvas.getContext('2d');
  const hudTex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, hudTex);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR_MIPMAP_LINEAR);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  let hudAt = -Infinity; // when the HUD texture was last drawn; -Infinity: never
  // Head-locked quad per eye, 2 m away; size from the video's aspect (a 1.6 m wide quad).
  const dist = Number(params.get('distance') || 2);
  const width = Number(params.get('width') || 1.6);
  // The HUD: head-locked too, centred below the eyes' quads, 0.6 of their width.
  const hudHalf = [width * 0.3, (width * 0.3 * XR_HUD_H) / XR_HUD_W];
  const hudGap = width * 0.03;
  const uniform = (name) => gl.getUniformLocation(prog, name);
  binoc.xr = session;
  session.addEventListener('end', () => {
    binoc.xr = null;
  });
  const draw = (time, frame) => {
    session.requestAnimationFrame(draw);
    const pose = frame.getViewerPose(space);
    if (!pose) return;
    const display = frame.predictedDisplayTime ?? time;
    // Upload the newest decoded frame of each eye just before drawing this XR frame.
    for (let eye = 0; eye < 2; eye++) {
      const m = xrPending[eye];
      if (!m) continue;
      xrPending[eye] = null;
      gl.bindTexture(gl.TEXTURE_2D, textures[eye]);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, binoc.videos[eye]);
      m.disp = display;
      send(m);
      binoc.markersSent++;
    }
    if (hudOn && time - hudAt >= XR_HUD_MS) {
      hudAt = time;
      drawXrHud(hudCtx);
      gl.bindTexture(gl.TEXTURE_2D, hudTex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, hudCanvas);
      gl.generateMipmap(gl.TEXTURE_2D);
    }
    // The HUD's top edge: below the taller of the two eyes' quads in both views (one place
    // in space for both eyes).
    const halfHeight = Math.max(...binoc.videos.map((v) => (width * aspectOf(v)) / 2));
    const layer = session.renderState.baseLayer;
    gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
    gl.clearColor(0, 0, 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(prog);
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    const loc = gl.getAttribLocation(prog, 'pos');
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    for (const view of pose.views) {
      // Each eye sees only its own camera.
      const eye = view.eye === 'right' ? 1 : 0;
      const vp = layer.getViewport(view);
      gl.viewport(vp.x, vp.y, vp.width, vp.height);
      const aspect = aspectOf(binoc.videos[eye]);
      gl.uniformMatrix4fv(uniform('proj'), false, view.projectionMatrix);
      gl.uniform2f(uniform('center'), 0, 0);
      gl.uniform2f(uniform('halfSize'), width / 2, (width * aspect) / 2);
      gl.uniform1f(uniform('dist'), dist);
      gl.bindTexture(gl.TEXTURE_2D, textures[eye]);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      if (hudOn && hudAt > -Infinity) {
        // Blended over the black around the quads; the framebuffer's alpha stays 1.
        gl.uniform2f(uniform('center'), 0, -(halfHeight + hudGap + hudHalf[1]));
        gl.uniform2f(uniform('halfSize'), hudHalf[0], hudHalf[1]);
        gl.enable(gl.BLEND);
        gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ZERO, gl.ONE);
        gl.bindTexture(gl.TEXTURE_2D, hudTex);
        gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
        gl.disable(gl.BLEND);
      }
    }
  };
  session.requestAnimationFrame(draw);
}

async function offerVR() {
  if (!navigator.xr) return;
  if (!(await navigator.xr.isSessionSupported('immersive-vr').catch(() => false))) return;
  const b = document.getElementById('enter-vr');
  b.hidden = false;
  b.onclick = () => enterVR().catch((e) => status(`WebXR: ${e.message}`, true));
}

connect();
offerVR();
setInterval(() => pollStats().catch(() => {}), 1000);
setInterval(() => {
  if (hudOn && !document.hidden) drawPageGraph();
}, 250);
