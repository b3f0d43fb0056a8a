// binoc browser viewer: a WHEP client for the streamer's two video tracks (left eye, right
// eye), frame markers and clock sync on the DataChannel "binoc", a HUD, and WebXR.
//
// Desktop: both eyes side by side. Quest Browser: "Enter VR" shows the left track to the left
// eye only and the right track to the right eye only (a head-locked quad per eye).
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
  pc: null,
  dc: null,
  resource: null,
  videos: EYES.map((e) => document.getElementById(e)),
  // Last pixel code read per eye: [eye, frame] or null.
  codes: [null, null],
  codesRead: [0, 0],
  markersSent: 0,
  streamer: null, // the last stats message from the streamer
  inbound: [null, null], // getStats() inbound-rtp per eye
  xr: null,
  error: null,
};
window.binoc = binoc;

const statusEl = document.getElementById('status');
function status(text, isError) {
  statusEl.textContent = text;
  statusEl.className = isError ? 'error' : '';
  if (isError) binoc.error = text;
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
  if (binoc.dc && binoc.dc.readyState === 'open') binoc.dc.send(JSON.stringify(msg));
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
  }
}

// ---- frames: markers, pixel codes, XR upload ----
// Per eye, the newest frame not yet uploaded to the XR layer (only the newest is kept, so an
// older frame can never be shown after a newer one).
const xrPending = [null, null];

function watchFrames(eye) {
  const video = binoc.videos[eye];
  if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype)) {
    status('this browser has no requestVideoFrameCallback: no latency markers', true);
    return;
  }
  const onFrame = (now, md) => {
    const code = readCode(video);
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
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

// ---- WHEP ----
async function connect() {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  binoc.pc = pc;
  const transceivers = EYES.map(() => pc.addTransceiver('video', { direction: 'recvonly' }));
  transceivers.forEach((t, eye) => {
    // Render as soon as decoded: no jitter-buffer smoothing (Chrome 114+).
    if ('jitterBufferTarget' in t.receiver) t.receiver.jitterBufferTarget = 0;
    binoc.videos[eye].srcObject = new MediaStream([t.receiver.track]);
    binoc.videos[eye].play().catch(() => {});
    watchFrames(eye);
  });
  const dc = pc.createDataChannel('binoc', { ordered: false });
  dc.onmessage = onMessage;
  binoc.dc = dc;
  pc.onconnectionstatechange = () => {
    status(pc.connectionState, pc.connectionState === 'failed');
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch('/whep', { method: 'POST', headers, body: offer.sdp });
  if (res.status !== 201) throw new Error(`WHEP: ${res.status} ${await res.text()}`);
  binoc.resource = res.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
}

function disconnect() {
  if (binoc.resource) {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    fetch(binoc.resource, { method: 'DELETE', headers, keepalive: true }).catch(() => {});
    binoc.resource = null;
  }
}
window.addEventListener('pagehide', disconnect);

// ---- HUD ----
const hud = document.getElementById('hud');
let hudOn = true;
document.getElementById('toggle-hud').onclick = () => {
  hudOn = !hudOn;
  hud.hidden = !hudOn;
};
const last = [null, null];

async function pollStats() {
  if (!binoc.pc) return;
  const stats = await binoc.pc.getStats();
  const mids = binoc.pc.getTransceivers().map((t) => t.mid);
  stats.forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
    const eye = mids.indexOf(s.mid);
    if (eye < 0 || eye > 1) return;
    const prev = last[eye];
    const mbps = prev ? ((s.bytesReceived - prev.bytesReceived) * 8) / (s.timestamp - prev.timestamp) / 1e3 : 0;
    binoc.inbound[eye] = { ...s, mbps };
    last[eye] = s;
  });
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

// ---- WebXR ----
const VS = `#version 300 es
in vec2 pos;
uniform mat4 proj;
uniform vec2 halfSize;
uniform float dist;
out vec2 uv;
void main() {
  uv = vec2(pos.x * 0.5 + 0.5, 0.5 - pos.y * 0.5);
  gl_Position = proj * vec4(pos * halfSize, -dist, 1.0);
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
  // Head-locked quad per eye, 2 m away; size from the video's aspect (a 1.6 m wide quad).
  const dist = Number(params.get('distance') || 2);
  const width = Number(params.get('width') || 1.6);
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
      const v = binoc.videos[eye];
      const aspect = v.videoWidth && v.videoHeight ? v.videoHeight / v.videoWidth : 9 / 16;
      gl.uniformMatrix4fv(gl.getUniformLocation(prog, 'proj'), false, view.projectionMatrix);
      gl.uniform2f(gl.getUniformLocation(prog, 'halfSize'), width / 2, (width * aspect) / 2);
      gl.uniform1f(gl.getUniformLocation(prog, 'dist'), dist);
      gl.bindTexture(gl.TEXTURE_2D, textures[eye]);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
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

connect().catch((e) => status(e.message, true));
offerVR();
setInterval(() => pollStats().catch(() => {}), 1000);
