/* RadViewer study viewer: one <canvas>, no framework.
 *
 * - zoom: mouse wheel, centred on the pointer; pan: left-drag, or space + drag;
 * - window/level: right-drag or shift + drag (left-right = width, up-down = level),
 *   applied client-side as a 256-entry lookup table over the grey values of the 8-bit
 *   display image the server sends;
 * - overlay: the RGBA heat map of the prediction (or a computed attribution), drawn over the
 *   image with the same transform, toggled with `o`, opacity from the slider;
 * - keys: n next study, o overlay, r reset, ? help (the reading-form keys a, 1-9, Enter are in
 *   reading.js; the tools' keys in viewer-tools.js).
 * - orientation and invert (issue 14): rotation by quarter turns and horizontal/vertical flips
 *   are part of the draw transform (screen = translate(offset) * scale * orient, orient about
 *   the image centre), so the overlay and every tool drawing follow them; invert is folded into
 *   the window lookup table.
 *
 * Tools (static/js/viewer-tools.js) and other add-ons use `window.RadViewerViewer`:
 *   imageToScreen(x, y) / screenToImage(x, y)  image pixels <-> canvas CSS pixels;
 *   onDraw(fn)         fn(ctx, api) after each frame, ctx in canvas CSS pixels (dpr applied);
 *   onPointerDown(fn)  fn(event, imagePoint) before pan/window; return true to take the event;
 *   drawScene(ctx, m)  draw image + overlay with screen matrix m (a DOMMatrix, e.g. a loupe);
 *   rotate(quarterTurns), flip("h" | "v"), setInvert(on), zoomAt, panBy, setWindow, reset,
 *   schedule (redraw), fit, state, greyAt(x, y) (the 8-bit display value), imageSize().
 *
 * Window/level approximation. The browser never sees the original DICOM values, only the
 * display PNG the server made through the Modality and VOI LUTs, i.e. with the DICOM window
 * stored on the Image (window_center/window_width). Hence:
 *   - "Default" is the identity window in display space (centre 127.5, width 255; drawn as
 *     the image itself, no lookup table): exactly
 *     the stored DICOM window, or the full range when the image had none (PNG/JPEG).
 *   - Lung / Soft tissue / Bone are relative windows in display space (dark range stretched,
 *     middle range narrowed, bright range stretched), not Hounsfield windows: radiographs
 *     and OCT carry no HU, and values outside the stored window are already clipped to
 *     0/255, so a window can narrow the stored range but never recover what was clipped.
 *   - The readout shows the display window and, for DICOM with a stored window, its
 *     equivalent in the original units: C = Cs + (c/255 - 0.5) * Ws, W = w/255 * Ws.
 */
(function () {
  "use strict";

  const root = document.getElementById("viewer");
  const canvas = document.getElementById("viewer-canvas");
  if (!root || !canvas) return;
  const ctx = canvas.getContext("2d");
  const readout = document.getElementById("wl-readout");
  const toggle = document.getElementById("overlay-toggle");
  const opacityInput = document.getElementById("overlay-opacity");
  const sourceSelect = document.getElementById("overlay-source");
  const help = document.getElementById("shortcut-help");

  const { PRESETS, buildLut } = window.RadViewerWindow; // static/js/window-lut.js
  const storedCenter = parseFloat(root.dataset.windowCenter);
  const storedWidth = parseFloat(root.dataset.windowWidth);
  const hasStoredWindow = Number.isFinite(storedCenter) && Number.isFinite(storedWidth) && storedWidth > 0;

  const state = {
    scale: 1, offsetX: 0, offsetY: 0, fitScale: 1,
    orient: new DOMMatrix(), // quarter turns and flips only: entries in {-1, 0, 1}
    invert: false,
    center: PRESETS.default.center, width: PRESETS.default.width,
    overlayOn: toggle ? toggle.checked : true,
    opacity: opacityInput ? opacityInput.value / 100 : 0.45,
    overlaySource: null,
    ready: false,
  };
  const overlays = new Map(); // source -> {label, url, image}
  const renderHooks = []; // heatmap (issue #14 item 12): see onRender below
  const windowed = document.createElement("canvas");
  const wctx = windowed.getContext("2d");
  let source = null; // the loaded display image
  let grey = null; // Uint8Array, one grey value per pixel, read from `source` when first needed
  let windowedData = null;
  let imgW = 0;
  let imgH = 0;
  let frame = 0;
  let lutDirty = true;

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  /* The Default window at no inversion is the identity: the display image is drawn as sent,
     and its pixels are read back (getImageData of a few megapixels, the longest step of
     opening a study) only when a window, an inversion or the probe first needs them. */
  function isIdentity() {
    return state.center === PRESETS.default.center && state.width === PRESETS.default.width && !state.invert;
  }

  function ensureGrey() {
    if (grey || !source) return;
    wctx.clearRect(0, 0, imgW, imgH);
    wctx.drawImage(source, 0, 0);
    const rgba = wctx.getImageData(0, 0, imgW, imgH);
    grey = new Uint8Array(imgW * imgH);
    for (let i = 0, j = 0; i < grey.length; i++, j += 4) grey[i] = rgba.data[j];
    windowedData = rgba;
  }

  function applyWindow() {
    if (!source) return;
    lutDirty = false;
    if (isIdentity()) {
      wctx.clearRect(0, 0, imgW, imgH);
      wctx.drawImage(source, 0, 0);
      return;
    }
    ensureGrey();
    const lut = buildLut(state.center, state.width);
    if (state.invert) for (let v = 0; v < 256; v++) lut[v] = 255 - lut[v];
    const d = windowedData.data;
    for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
      const v = lut[grey[i]];
      d[j] = v; d[j + 1] = v; d[j + 2] = v; d[j + 3] = 255;
    }
    wctx.putImageData(windowedData, 0, 0);
  }

  function currentOverlay() {
    const o = state.overlaySource && overlays.get(state.overlaySource);
    return o && o.image && o.image.complete && o.image.naturalWidth ? o : null;
  }

  /* --- transform: image pixels -> canvas CSS pixels ----------------------------------- */
  // Size of the image once oriented (a quarter turn swaps width and height).
  function orientedSize() {
    const o = state.orient;
    return { w: Math.abs(o.a) * imgW + Math.abs(o.c) * imgH, h: Math.abs(o.b) * imgW + Math.abs(o.d) * imgH };
  }

  function orientMatrix() {
    const { w, h } = orientedSize();
    return new DOMMatrix().translate(w / 2, h / 2).multiply(state.orient).translate(-imgW / 2, -imgH / 2);
  }

  function screenMatrix() {
    return new DOMMatrix().translate(state.offsetX, state.offsetY).scale(state.scale).multiply(orientMatrix());
  }

  function imageToScreen(x, y) {
    const p = screenMatrix().transformPoint(new DOMPoint(x, y));
    return { x: p.x, y: p.y };
  }

  function screenToImage(x, y) {
    const p = screenMatrix().inverse().transformPoint(new DOMPoint(x, y));
    return { x: p.x, y: p.y };
  }

  function drawScene(c, matrix) {
    const dpr = window.devicePixelRatio || 1;
    c.setTransform(new DOMMatrix().scale(dpr).multiply(matrix));
    c.imageSmoothingEnabled = matrix.a * matrix.a + matrix.b * matrix.b < 9; // crisp pixels when zoomed far in
    c.drawImage(windowed, 0, 0);
    const overlay = state.overlayOn ? currentOverlay() : null;
    if (overlay) {
      c.globalAlpha = state.opacity;
      c.drawImage(overlay.image, 0, 0, imgW, imgH);
      c.globalAlpha = 1;
    }
    return overlay;
  }

  const drawHooks = [];
  const pointerHooks = [];

  function render() {
    frame = 0;
    const dpr = window.devicePixelRatio || 1;
    const rect = canvas.getBoundingClientRect();
    const cw = Math.max(1, Math.round(rect.width * dpr));
    const ch = Math.max(1, Math.round(rect.height * dpr));
    if (canvas.width !== cw || canvas.height !== ch) {
      canvas.width = cw;
      canvas.height = ch;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, cw, ch);
    if (!source) return;
    if (lutDirty) applyWindow();
    const overlay = drawScene(ctx, screenMatrix());
    // heatmap (issue #14 item 12): extra drawing in image coordinates (static/js/viewer-overlay.js)
    renderHooks.forEach((hook) => hook(ctx, { overlay: overlay ? state.overlaySource : "", scale: state.scale }));
    // viewer tools: drawing in canvas CSS pixels, on top (measurements, magnifier)
    for (const hook of drawHooks) {
      ctx.save();
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      try { hook(ctx, api); } finally { ctx.restore(); }
    }
    // State for tests and assistive tools: what is drawn right now.
    canvas.dataset.overlayVisible = overlay ? "true" : "false";
    canvas.dataset.overlaySource = overlay ? state.overlaySource : "";
    canvas.dataset.overlayOpacity = state.opacity.toFixed(2);
    canvas.dataset.window = `${Math.round(state.center)}/${Math.round(state.width)}`;
    canvas.dataset.scale = state.scale.toFixed(3);
    canvas.dataset.rotation = String(orientation().rotation);
    canvas.dataset.flip = orientation().flip;
    canvas.dataset.invert = state.invert ? "true" : "false";
    updateReadout();
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  function updateReadout() {
    if (!readout) return;
    let text = `W ${Math.round(state.width)} / L ${Math.round(state.center)}`;
    if (hasStoredWindow && root.dataset.format === "dicom") {
      const c = storedCenter + (state.center / 255 - 0.5) * storedWidth;
      const w = (state.width / 255) * storedWidth;
      text += ` (≈ W ${Math.round(w)} / L ${Math.round(c)} DICOM)`;
    }
    text += ` · ${Math.round(state.scale * 100)} %`;
    readout.textContent = text;
  }

  function fit() {
    const rect = canvas.getBoundingClientRect();
    if (!imgW || !rect.width) return;
    const { w, h } = orientedSize();
    state.fitScale = Math.min(rect.width / w, rect.height / h);
    state.scale = state.fitScale;
    state.offsetX = (rect.width - w * state.scale) / 2;
    state.offsetY = (rect.height - h * state.scale) / 2;
    schedule();
  }

  // Rotation in degrees clockwise as seen (0, 90, 180, 270) and the mirror applied after it.
  // orient = flipH^k * rotate(rotation): a mirrored matrix has a = -cos, b = sin.
  function orientation() {
    const o = state.orient;
    const mirrored = o.a * o.d - o.b * o.c < 0;
    const rotation = ((Math.round(Math.atan2(o.b, mirrored ? -o.a : o.a) * 180 / Math.PI) % 360) + 360) % 360;
    return { rotation, flip: mirrored ? "h" : "" };
  }

  function rotate(quarterTurns) {
    state.orient = new DOMMatrix().rotate(90 * quarterTurns).multiply(state.orient);
    roundOrient();
    fit();
  }

  function flip(axis) {
    state.orient = new DOMMatrix().scale(axis === "h" ? -1 : 1, axis === "v" ? -1 : 1).multiply(state.orient);
    roundOrient();
    fit();
  }

  function roundOrient() {
    const o = state.orient;
    state.orient = new DOMMatrix([Math.round(o.a), Math.round(o.b), Math.round(o.c), Math.round(o.d), 0, 0]);
  }

  function setInvert(on) {
    state.invert = !!on;
    lutDirty = true;
    schedule();
  }

  function panBy(dx, dy) {
    state.offsetX += dx;
    state.offsetY += dy;
    schedule();
  }

  function setWindow(center, width) {
    state.center = clamp(center, -128, 383);
    state.width = clamp(width, 1, 510);
    lutDirty = true;
    schedule();
  }

  function reset() {
    state.orient = new DOMMatrix();
    state.invert = false;
    fit();
    setWindow(PRESETS.default.center, PRESETS.default.width);
  }

  function zoomAt(x, y, factor) {
    const scale = clamp(state.scale * factor, state.fitScale * 0.25, state.fitScale * 40);
    const k = scale / state.scale;
    state.offsetX = x - (x - state.offsetX) * k;
    state.offsetY = y - (y - state.offsetY) * k;
    state.scale = scale;
    schedule();
  }

  /* --- image and overlays ------------------------------------------------------------ */
  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error(`could not load ${url}`));
      img.src = url;
    });
  }

  loadImage(root.dataset.displayUrl).then((img) => {
    imgW = img.naturalWidth;
    imgH = img.naturalHeight;
    windowed.width = imgW;
    windowed.height = imgH;
    source = img;
    lutDirty = true;
    reset();
    state.ready = true;
    canvas.dataset.ready = "true";
    render();
  }).catch((err) => {
    root.classList.add("load-failed");
    canvas.dataset.error = err.message;
  });

  function selectOverlay(source) {
    if (!overlays.has(source)) return;
    state.overlaySource = source;
    if (sourceSelect) sourceSelect.value = source;
    schedule();
  }

  /* Overlay sources are announced by the server's partials as [data-overlay-source]; they
     appear when the triage (or an attribution) finishes, without a page reload. */
  function scanSources() {
    // Only announcements carry a URL: the canvas mirrors its drawn source in its own
    // data-overlay-source attribute, which is state, not a source.
    document.querySelectorAll("[data-overlay-source][data-overlay-url]").forEach((el) => {
      const source = el.dataset.overlaySource;
      if (!source || !el.dataset.overlayUrl || overlays.has(source)) return;
      const entry = { label: el.dataset.overlayLabel || source, url: el.dataset.overlayUrl, image: null };
      overlays.set(source, entry);
      if (sourceSelect) sourceSelect.add(new Option(entry.label, source));
      // The first source announced (the prediction's attention map) is the default, whichever
      // image arrives first; it is drawn once loaded.
      if (!state.overlaySource) selectOverlay(source);
      loadImage(entry.url).then((img) => {
        entry.image = img;
        schedule();
      }).catch(() => {
        entry.failed = true;
        const loaded = [...overlays.keys()].find((k) => overlays.get(k).image);
        if (state.overlaySource === source && loaded) selectOverlay(loaded);
      });
    });
  }

  /* --- input ---------------------------------------------------------------------------- */
  let drag = null;
  let spaceHeld = false;
  let pointerOver = false;

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoomAt(e.offsetX, e.offsetY, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("pointerenter", () => { pointerOver = true; });
  canvas.addEventListener("pointerleave", () => { pointerOver = false; });
  canvas.addEventListener("pointerdown", (e) => {
    const windowing = e.button === 2 || (e.button === 0 && e.shiftKey && !spaceHeld);
    if (e.button !== 0 && e.button !== 2) return;
    if (e.button === 0 && !windowing && !spaceHeld && state.ready) {
      const p = screenToImage(e.offsetX, e.offsetY);
      if (pointerHooks.some((hook) => hook(e, p))) return;
    }
    drag = { mode: windowing ? "window" : "pan", x: e.clientX, y: e.clientY };
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add(windowing ? "windowing" : "panning");
    e.preventDefault();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    drag.x = e.clientX;
    drag.y = e.clientY;
    if (drag.mode === "pan") {
      panBy(dx, dy);
    } else {
      setWindow(state.center + dy * 0.5, state.width + dx);
    }
  });
  const endDrag = (e) => {
    if (!drag) return;
    drag = null;
    canvas.classList.remove("windowing", "panning");
    if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
  };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  document.querySelectorAll("[data-preset]").forEach((button) => {
    button.addEventListener("click", () => {
      const p = PRESETS[button.dataset.preset];
      if (p) setWindow(p.center, p.width);
    });
  });
  document.addEventListener("click", (e) => {
    const target = e.target.closest("[data-action], [data-show-overlay]");
    if (!target) return;
    if (target.dataset.showOverlay) {
      selectOverlay(target.dataset.showOverlay);
      setOverlayOn(true);
    } else if (target.dataset.action === "reset") {
      reset();
    } else if (target.dataset.action === "help") {
      showHelp();
    }
  });

  function setOverlayOn(on) {
    state.overlayOn = on;
    if (toggle) toggle.checked = on;
    schedule();
  }
  if (toggle) toggle.addEventListener("change", () => setOverlayOn(toggle.checked));
  if (opacityInput) {
    opacityInput.addEventListener("input", () => {
      state.opacity = clamp(opacityInput.value / 100, 0, 1);
      schedule();
    });
  }
  if (sourceSelect) sourceSelect.addEventListener("change", () => selectOverlay(sourceSelect.value));

  function showHelp() {
    if (help && !help.open) help.showModal();
  }

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) &&
      !(t.type === "checkbox" || t.type === "range" || t.type === "radio");
    if (e.key === " " && !typing && (pointerOver || drag)) {
      spaceHeld = true;
      e.preventDefault();
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey || (help && help.open)) return;
    switch (e.key) {
      case "n": window.location.assign(root.dataset.nextUrl); break;
      case "o": setOverlayOn(!state.overlayOn); break;
      case "r": reset(); break;
      case "?": showHelp(); break;
      default: return;
    }
    e.preventDefault();
  });
  document.addEventListener("keyup", (e) => { if (e.key === " ") spaceHeld = false; });

  document.addEventListener("htmx:afterSettle", scanSources);
  if (window.ResizeObserver) {
    // A new canvas size (window resize, full screen): a fitted image is fitted again; a zoomed
    // one keeps its scale and the point at the centre of the canvas.
    let last = null;
    new ResizeObserver(() => {
      const rect = canvas.getBoundingClientRect();
      if (state.ready && last && (last.w !== rect.width || last.h !== rect.height)) {
        if (Math.abs(state.scale - state.fitScale) < 1e-6 * state.fitScale) {
          fit();
        } else {
          state.offsetX += (rect.width - last.w) / 2;
          state.offsetY += (rect.height - last.h) / 2;
        }
      }
      last = { w: rect.width, h: rect.height };
      if (state.ready) schedule();
    }).observe(canvas);
  }
  window.addEventListener("resize", schedule);
  scanSources();

  /* heatmap (issue #14 item 12): onRender(fn) calls fn(ctx, {overlay, scale}) after each
     frame with the image transform still set, so what it draws follows zoom and pan. */
  function onRender(hook) {
    renderHooks.push(hook);
    schedule();
  }


  function greyAt(x, y) {
    ensureGrey();
    const i = Math.floor(y) * imgW + Math.floor(x);
    return grey && x >= 0 && y >= 0 && x < imgW && y < imgH ? grey[i] : null;
  }

  const api = {
    root, canvas, state, imageToScreen, screenToImage, drawScene, screenMatrix, schedule, render, fit, reset,
    zoomAt, panBy, setWindow, rotate, flip, setInvert, orientation, greyAt,
    imageSize: () => ({ width: imgW, height: imgH }),
    onDraw: (fn) => { drawHooks.push(fn); schedule(); },
    onPointerDown: (fn) => { pointerHooks.push(fn); },
  };
  window.RadViewerViewer = api;
  window.radViewer = { state, overlays, render, reset, setWindow, selectOverlay, buildLut, onRender, schedule };
  document.dispatchEvent(new CustomEvent("radviewer:viewer-ready", { detail: api }));
})();
