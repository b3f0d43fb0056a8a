// Opens pi-streamer's viewer page in Debian's chromium (headless) and reports, as JSON on
// stdout, what the page decoded: framesDecoded per eye (getStats), the pixel codes read from
// each video, markers sent. Used by pi-streamer/tests/browser.rs.
//
//   node view.mjs URL [--viewers N] [--min-decoded N] [--timeout-s N] [--hold-s N] [--xr]
//                     [--screenshot FILE.png]
//     --screenshot: the first viewer's page as a PNG, at the end of the hold (the README's)
//     --xr: a stand-in WebXR device (xr-mock.js); the page enters VR and the test reads back
//           which camera each eye's view shows
//   node view.mjs URL --reconnect [--min-decoded N] [--timeout-s N]
//     one viewer; prints READY once both eyes decoded N frames, LOST once the page says it is
//     reconnecting (the caller stops the streamer after READY and starts one on the same
//     address after LOST), then the JSON once the page connected again and decoded N frames
//     per eye on the new connection and showed them. Each wait times out after --timeout-s;
//     after a timeout the JSON comes at once, without the lines still due.
//   node view.mjs --offer       (prints a recvonly offer with two video m-lines, for curl)
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const url = args.find((a) => a.startsWith('https://'));
const viewers = Number(opt('--viewers', 1));
const minDecoded = Number(opt('--min-decoded', 100));
const timeoutS = Number(opt('--timeout-s', 60));
const holdS = Number(opt('--hold-s', 0));
const xr = args.includes('--xr');
const reconnect = args.includes('--reconnect');
const screenshot = opt('--screenshot', null);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --reconnect: READY, LOST, then the JSON (see above); `read` is the page's state.
async function followReconnect(page, read, start) {
  let r = null;
  // Polls the page until `done(r)`, an error that ends its reconnecting, or the timeout.
  const waitFor = async (done) => {
    const until = Date.now() + timeoutS * 1000;
    for (;;) {
      r = await read(page);
      if (done(r)) return true;
      if (r.error || Date.now() > until) return false;
      await sleep(250);
    }
  };
  let ready = null;
  let lost = false;
  let back = false;
  if (await waitFor((r) => r.connects >= 1 && r.decoded.every((d) => d > minDecoded) && r.codesRead.every((c) => c > 0))) {
    ready = { connection: r.connection, at: r.now, codesRead: r.codesRead, markersSent: r.markersSent };
    process.stdout.write('READY\n');
    lost = await waitFor((r) => r.statusLog.some(([t, text]) => t > ready.at && text.includes('reconnecting')));
  }
  if (lost) {
    process.stdout.write('LOST\n');
    back = await waitFor(
      (r) =>
        r.connects >= 2 &&
        r.connection > ready.connection &&
        // framesDecoded counts per peer connection: `decoded` is the new one's.
        r.decoded.every((d) => d > minDecoded) &&
        // Shown in the same <video> elements, markers sent for them.
        r.codesRead.every((c, eye) => c > ready.codesRead[eye]) &&
        r.markersSent > ready.markersSent + 2 * minDecoded,
    );
  }
  await page.close({ runBeforeUnload: true });
  await sleep(300);
  const out = { elapsed_s: (Date.now() - start) / 1000, ready, lost, back, viewers: [r] };
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--ignore-certificate-errors',
    '--autoplay-policy=no-user-gesture-required',
    // WebGL without a GPU (the WebXR path): SwiftShader.
    '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader',
  ],
});

try {
  if (args.includes('--offer')) {
    const page = await (await browser.newContext()).newPage();
    const sdp = await page.evaluate(async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.createDataChannel('binoc');
      const o = await pc.createOffer();
      return o.sdp;
    });
    process.stdout.write(sdp);
  } else {
    // Every viewer in its own context (its own peer connection), all at once.
    const pages = [];
    for (let i = 0; i < viewers; i++) {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await ctx.newPage();
      page.on('console', (m) => process.stderr.write(`[viewer ${i}] ${m.type()}: ${m.text()}\n`));
      page.on('pageerror', (e) => process.stderr.write(`[viewer ${i}] page error: ${e.message}\n`));
      if (xr) await page.addInitScript({ content: readFileSync(new URL('./xr-mock.js', import.meta.url), 'utf8') });
      await page.goto(url);
      if (xr) {
        // Enter VR as a user would, once the page offers it and both videos play.
        await page.waitForFunction(() => window.binoc.inbound.every((s) => s && s.framesDecoded > 10), null, { timeout: timeoutS * 1000 });
        await page.click('#enter-vr');
      }
      pages.push(page);
    }
    const read = (page) =>
      page.evaluate((history) => {
        const b = window.binoc;
        // --reconnect: the page's connections and statuses too.
        const more = history
          ? {
              connection: b.conn ? b.conn.id : null,
              connects: b.connects,
              reconnectAttempts: b.reconnectAttempts,
              connections: b.connections,
              statusLog: b.statusLog,
              status: document.getElementById('status').textContent,
              now: performance.now(),
            }
          : {};
        return {
          decoded: b.inbound.map((s) => (s ? s.framesDecoded : 0)),
          dropped: b.inbound.map((s) => (s ? s.framesDropped ?? 0 : 0)),
          keyframes: b.inbound.map((s) => (s ? s.keyFramesDecoded ?? 0 : 0)),
          nacks: b.inbound.map((s) => (s ? s.nackCount ?? 0 : 0)),
          plis: b.inbound.map((s) => (s ? s.pliCount ?? 0 : 0)),
          codec: b.inbound.map((s) => (s ? s.decoderImplementation ?? null : null)),
          codes: b.codes,
          codesRead: b.codesRead,
          markersSent: b.markersSent,
          streamer: b.streamer,
          error: b.error,
          size: b.videos.map((v) => [v.videoWidth, v.videoHeight]),
          hud: document.getElementById('hud').textContent,
          inXR: !!b.xr,
          xr: window.__xrMock || null,
          ...more,
        };
      }, reconnect);
    const start = Date.now();
    if (reconnect) {
      await followReconnect(pages[0], read, start);
    } else {
      let results;
      for (;;) {
        results = await Promise.all(pages.map(read));
        const done = results.every(
          (r) =>
            r.decoded.every((d) => d > minDecoded) &&
            // A headless browser runs fewer frame callbacks than it decodes frames, and markers
            // sent before the clock estimate settles cannot be placed: wait for enough markers
            // (both eyes together) too, not only for the decoder's count.
            r.markersSent > 3 * minDecoded &&
            r.codesRead.every((c) => c > 0) &&
            (!xr || (r.xr && r.xr.codesRead.every((c) => c > minDecoded / 2))),
        );
        if (done || results.some((r) => r.error)) break;
        if (Date.now() - start > timeoutS * 1000) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      if (holdS > 0) {
        await new Promise((r) => setTimeout(r, holdS * 1000));
        results = await Promise.all(pages.map(read));
      }
      if (screenshot) await pages[0].screenshot({ path: screenshot });
      // Leave properly: the page's pagehide handler DELETEs the WHEP resource.
      for (const p of pages) await p.close({ runBeforeUnload: true });
      await new Promise((r) => setTimeout(r, 300));
      process.stdout.write(JSON.stringify({ elapsed_s: (Date.now() - start) / 1000, viewers: results }, null, 1) + '\n');
    }
  }
} finally {
  await browser.close();
}
