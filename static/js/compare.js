/* RadViewer side-by-side compare: a study and its prior, one <canvas> each, no framework.
 *
 * Same gestures as the study viewer (viewer.js): wheel zoom at the pointer, left-drag pan,
 * right-drag or shift+drag window/level (a 256-entry lookup table over the 8-bit display
 * image). With "Link" on (default) every gesture and preset applies to both images: zoom is
 * relative to each image's fit, pan is in screen pixels, the window is the same display
 * window. Keys: r reset, l link on/off. Each canvas gets data-ready="true" once drawn.
 */
(function () {
  "use strict";

  const root = document.getElementById("compare");
  if (!root) return;
  const linkBox = document.getElementById("compare-link");
  const { PRESETS, buildLut } = window.RadViewerWindow; // static/js/window-lut.js
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function makePane(el) {
    const canvas = el.querySelector("canvas");
    const windowed = document.createElement("canvas");
    const pane = {
      el, canvas, ctx: canvas.getContext("2d"), windowed, wctx: windowed.getContext("2d"),
      readout: el.closest(".compare-pane").querySelector(".compare-readout"),
      grey: null, data: null, imgW: 0, imgH: 0,
      zoom: 1, panX: 0, panY: 0, center: PRESETS.default.center, width: PRESETS.default.width,
      lutDirty: true, frame: 0,
    };
    return pane;
  }

  const panes = Array.from(root.querySelectorAll(".compare-viewer")).map(makePane);
  if (!panes.length) return;
  const linked = () => !linkBox || linkBox.checked;
  const targets = (pane) => (linked() ? panes : [pane]);

  function fitScale(p) {
    const rect = p.canvas.getBoundingClientRect();
    return p.imgW && rect.width ? Math.min(rect.width / p.imgW, rect.height / p.imgH) : 1;
  }

  function geometry(p) {
    const rect = p.canvas.getBoundingClientRect();
    const scale = fitScale(p) * p.zoom;
    return {
      rect, scale,
      x: (rect.width - p.imgW * scale) / 2 + p.panX,
      y: (rect.height - p.imgH * scale) / 2 + p.panY,
    };
  }

  function render(p) {
    p.frame = 0;
    const dpr = window.devicePixelRatio || 1;
    const g = geometry(p);
    const cw = Math.max(1, Math.round(g.rect.width * dpr));
    const ch = Math.max(1, Math.round(g.rect.height * dpr));
    if (p.canvas.width !== cw || p.canvas.height !== ch) {
      p.canvas.width = cw;
      p.canvas.height = ch;
    }
    const ctx = p.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, cw, ch);
    if (!p.grey) return;
    if (p.lutDirty) {
      const lut = buildLut(p.center, p.width);
      const d = p.data.data;
      for (let i = 0, j = 0; i < p.grey.length; i++, j += 4) {
        const v = lut[p.grey[i]];
        d[j] = v; d[j + 1] = v; d[j + 2] = v; d[j + 3] = 255;
      }
      p.wctx.putImageData(p.data, 0, 0);
      p.lutDirty = false;
    }
    ctx.setTransform(dpr * g.scale, 0, 0, dpr * g.scale, dpr * g.x, dpr * g.y);
    ctx.imageSmoothingEnabled = g.scale < 3;
    ctx.drawImage(p.windowed, 0, 0);
    p.canvas.dataset.window = `${Math.round(p.center)}/${Math.round(p.width)}`;
    p.canvas.dataset.zoom = p.zoom.toFixed(3);
    if (p.readout) p.readout.textContent = `W ${Math.round(p.width)} / L ${Math.round(p.center)} · ${Math.round(g.scale * 100)} %`;
    if (!p.canvas.dataset.ready) {
      p.canvas.dataset.ready = "true";
      if (panes.every((q) => !q.grey || q.canvas.dataset.ready)) root.dataset.ready = "true";
    }
  }

  function schedule(p) {
    if (!p.frame) p.frame = requestAnimationFrame(() => render(p));
  }

  function setWindow(list, center, width) {
    list.forEach((p) => {
      p.center = clamp(center, -128, 383);
      p.width = clamp(width, 1, 510);
      p.lutDirty = true;
      schedule(p);
    });
  }

  function reset(list) {
    list.forEach((p) => { p.zoom = 1; p.panX = 0; p.panY = 0; });
    setWindow(list, PRESETS.default.center, PRESETS.default.width);
  }

  /* Zoom by ``factor`` keeping the image point under (x, y) (canvas pixels) in place. */
  function zoomAt(list, x, y, factor) {
    list.forEach((p) => {
      const before = geometry(p);
      const zoom = clamp(p.zoom * factor, 0.25, 40);
      const k = zoom / p.zoom;
      const newX = x - (x - before.x) * k;
      const newY = y - (y - before.y) * k;
      p.zoom = zoom;
      const after = geometry(p); // centred position at the new zoom, current pan
      p.panX += newX - after.x;
      p.panY += newY - after.y;
      schedule(p);
    });
  }

  function load(p) {
    const img = new Image();
    img.onload = () => {
      p.imgW = img.naturalWidth;
      p.imgH = img.naturalHeight;
      p.windowed.width = p.imgW;
      p.windowed.height = p.imgH;
      p.wctx.drawImage(img, 0, 0);
      const rgba = p.wctx.getImageData(0, 0, p.imgW, p.imgH);
      p.grey = new Uint8Array(p.imgW * p.imgH);
      for (let i = 0, j = 0; i < p.grey.length; i++, j += 4) p.grey[i] = rgba.data[j];
      p.data = rgba;
      p.lutDirty = true;
      render(p);
    };
    img.onerror = () => {
      p.el.classList.add("load-failed");
      p.canvas.dataset.error = `could not load ${p.el.dataset.displayUrl}`;
    };
    img.src = p.el.dataset.displayUrl;
  }

  panes.forEach((p) => {
    const canvas = p.canvas;
    let drag = null;
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      zoomAt(targets(p), e.offsetX, e.offsetY, Math.exp(-e.deltaY * 0.0015));
    }, { passive: false });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 && e.button !== 2) return;
      const windowing = e.button === 2 || e.shiftKey;
      drag = { mode: windowing ? "window" : "pan", x: e.clientX, y: e.clientY };
      canvas.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      drag.x = e.clientX;
      drag.y = e.clientY;
      if (drag.mode === "pan") {
        targets(p).forEach((q) => { q.panX += dx; q.panY += dy; schedule(q); });
      } else {
        setWindow(targets(p), p.center + dy * 0.5, p.width + dx);
      }
    });
    const end = (e) => {
      drag = null;
      if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    load(p);
  });

  document.querySelectorAll("[data-compare-preset]").forEach((button) => {
    button.addEventListener("click", () => {
      const preset = PRESETS[button.dataset.comparePreset];
      if (preset) setWindow(panes, preset.center, preset.width);
    });
  });
  document.querySelectorAll('[data-compare-action="reset"]').forEach((button) => {
    button.addEventListener("click", () => reset(panes));
  });
  if (linkBox) {
    linkBox.addEventListener("change", () => {
      // Linking again aligns the prior on the current study's view.
      if (linkBox.checked) {
        const [first, ...rest] = panes;
        rest.forEach((p) => {
          p.zoom = first.zoom; p.panX = first.panX; p.panY = first.panY;
          p.center = first.center; p.width = first.width; p.lutDirty = true;
          schedule(p);
        });
      }
    });
  }

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) && t.type !== "checkbox";
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "r") reset(panes);
    else if (e.key === "l" && linkBox) { linkBox.checked = !linkBox.checked; linkBox.dispatchEvent(new Event("change")); }
    else return;
    e.preventDefault();
  });
  if (window.ResizeObserver) {
    const ro = new ResizeObserver(() => panes.forEach(schedule));
    panes.forEach((p) => ro.observe(p.canvas));
  }

  window.radCompare = { panes, setWindow, zoomAt, reset };
})();
