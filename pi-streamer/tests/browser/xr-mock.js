// A stand-in WebXR device for headless Chromium (which has no XR runtime): an immersive
// session whose two views are the left and right halves of the page's WebGL canvas. Each view's
// projection maps the page's head-locked quad exactly onto its half, so after every XR frame
// the halves can be read back and the pixel code decoded: the left half must show the left
// camera, the right half the right camera. Injected by view.mjs --xr before the page loads.
(() => {
  const W = 1280;
  const H = 360;
  const results = { frames: 0, codes: [null, null], codesRead: [0, 0], history: [[], []], error: null };
  window.__xrMock = results;

  // Samples the middle of each of the 40 cells of one row spanning a view (x0..x0+w) and
  // decodes them with the page's own pixel-code reader.
  function decodeRow(px, x0, w) {
    const bits = [];
    for (let i = 0; i < 40; i++) {
      const x = x0 + Math.floor(((i + 0.5) * w) / 40);
      bits.push(px[x * 4 + 1] >= 128 ? 1 : 0);
    }
    return window.binoc.decodeBits(bits);
  }

  class XRWebGLLayer {
    constructor(session, gl) {
      gl.canvas.width = W;
      gl.canvas.height = H;
      this.framebuffer = null; // the canvas itself
      session._gl = gl;
    }
    getViewport(view) {
      return { x: view.eye === 'left' ? 0 : W / 2, y: 0, width: W / 2, height: H };
    }
  }

  class Session extends EventTarget {
    constructor() {
      super();
      this.renderState = {};
      this._cb = null;
      setInterval(() => this._tick(), 1000 / 72); // a 72 Hz headset
    }
    async updateRenderState(s) {
      Object.assign(this.renderState, s);
    }
    async requestReferenceSpace() {
      return {};
    }
    requestAnimationFrame(cb) {
      this._cb = cb;
      return 1;
    }
    async end() {
      this.dispatchEvent(new Event('end'));
    }
    _views() {
      // The page draws a quad `width` wide at `distance`, its height from the video's aspect;
      // map it to clip space −1..1 in x and y.
      const params = new URLSearchParams(location.search);
      const width = Number(params.get('width') || 1.6);
      const v = document.getElementById('left');
      const aspect = v.videoWidth && v.videoHeight ? v.videoHeight / v.videoWidth : 9 / 16;
      const m = new Float32Array(16);
      m[0] = 2 / width;
      m[5] = 2 / (width * aspect);
      m[15] = 1;
      return ['left', 'right'].map((eye) => ({ eye, projectionMatrix: m }));
    }
    _tick() {
      const cb = this._cb;
      if (!cb) return;
      this._cb = null;
      const now = performance.now();
      const views = this._views();
      const frame = { predictedDisplayTime: now + 1000 / 72, getViewerPose: () => ({ views }) };
      try {
        cb(now, frame);
        const gl = this._gl;
        if (!gl) return;
        // The middle row of the code band: the band is the top 16 rows of a 360-row frame,
        // which fills the view's 360 rows; readPixels counts rows from the bottom.
        const px = new Uint8Array(W * 4);
        gl.bindFramebuffer(gl.FRAMEBUFFER, null);
        gl.readPixels(0, H - 1 - 8, W, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
        results.frames++;
        for (let eye = 0; eye < 2; eye++) {
          const code = decodeRow(px, eye * (W / 2), W / 2);
          if (code) {
            results.codes[eye] = code;
            results.codesRead[eye]++;
            const h = results.history[eye];
            if (h.length === 0 || h[h.length - 1] !== code[1]) h.push(code[1]);
            if (h.length > 400) h.shift();
          }
        }
      } catch (e) {
        results.error = String(e);
      }
    }
  }

  const xr = {
    isSessionSupported: async (mode) => mode === 'immersive-vr',
    requestSession: async () => new Session(),
  };
  Object.defineProperty(navigator, 'xr', { value: xr, configurable: true });
  window.XRWebGLLayer = XRWebGLLayer;
})();
