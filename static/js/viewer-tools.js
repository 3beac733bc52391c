/* RadViewer viewer tools (issue 14 item 11), on top of viewer.js's `window.RadViewerViewer`.
 *
 * - orientation: invert (i), rotate 90° ([ / ]), flip horizontally / vertically (h / v); the
 *   core applies them in its draw transform, so overlays and measurements follow.
 * - measurements: length (l, two clicks) and angle (g, three clicks, the vertex second), kept
 *   in IMAGE pixel coordinates so they follow zoom, pan, rotation and flips. Esc cancels the
 *   one in progress (a second Esc leaves the tool); "Clear measurements" removes them all.
 *   Physical size comes from #viewer's data-spacing-row / data-spacing-col, captured at ingest
 *   from Pixel Spacing (0028,0030), else Imager Pixel Spacing (0018,1164; at the detector, not
 *   corrected for magnification). Both are "row spacing \ column spacing": a step of one row
 *   (dy) is row-spacing mm, a step of one column (dx) column-spacing mm. Without spacing the
 *   tools measure in pixels and the toolbar says "no pixel spacing: pixels". Angles are taken
 *   in physical space too (non-square pixels change them).
 * - magnifier (m): a 3x loupe drawn on the canvas around the pointer (no extra element).
 * - pixel-value probe (p). Decision: the browser has only the 8-bit display PNG, made through
 *   the Modality and VOI LUTs, so stored values come from the server: GET data-probe-url
 *   ?x=&y= (clinical.views.images.image_probe, access-checked like the display PNG) returns the
 *   stored value in the de-identified DICOM and its Modality LUT output (rescale slope and
 *   intercept, e.g. HU). Requests are debounced (150 ms), one in flight at a time (older ones
 *   aborted). PNG/JPEG have no stored units: the probe shows the 8-bit display value locally.
 * - full screen (f): the Fullscreen API on the viewer column (toolbar included); the image is
 *   fitted again when the size changes.
 * - keyboard: arrows pan, + / - zoom about the centre, shift+left/right window width,
 *   shift+up/down level; the canvas is focusable (tabindex=0).
 * State for tests and assistive tools: canvas data-active-tool, data-measurements, data-magnifier,
 * data-probe; the #measure-list items and #probe-readout text.
 */
(function () {
  "use strict";

  function start(api) {
    const root = api.root;
    const canvas = api.canvas;
    const list = document.getElementById("measure-list");
    const probeOut = document.getElementById("probe-readout");
    const help = document.getElementById("shortcut-help");
    const invertButton = document.querySelector('[data-tool-action="invert"]');
    const rowSp = parseFloat(root.dataset.spacingRow);
    const colSp = parseFloat(root.dataset.spacingCol);
    const hasSpacing = rowSp > 0 && colSp > 0;
    const isDicom = root.dataset.format === "dicom";
    const LOUPE_RADIUS = 80;
    const LOUPE_ZOOM = 3;
    const POINTS = { length: 2, angle: 3 };

    const tools = {
      tool: null, // "length" | "angle" | null
      pending: [], // image points of the measurement being placed
      measurements: [], // {kind, points}
      hover: null, // {sx, sy, ix, iy}: pointer on the canvas, screen and image coordinates
      magnifier: false,
      probe: false,
    };

    /* --- measurement values ------------------------------------------------------------ */
    function physical(p) {
      return hasSpacing ? { x: p.x * colSp, y: p.y * rowSp } : { x: p.x, y: p.y };
    }

    function lengthOf(a, b) {
      const pa = physical(a);
      const pb = physical(b);
      return Math.hypot(pb.x - pa.x, pb.y - pa.y);
    }

    function angleOf(a, b, c) {
      const pa = physical(a);
      const pb = physical(b);
      const pc = physical(c);
      const u = { x: pa.x - pb.x, y: pa.y - pb.y };
      const v = { x: pc.x - pb.x, y: pc.y - pb.y };
      const n = Math.hypot(u.x, u.y) * Math.hypot(v.x, v.y);
      if (!n) return 0;
      return Math.acos(Math.max(-1, Math.min(1, (u.x * v.x + u.y * v.y) / n))) * 180 / Math.PI;
    }

    function label(m) {
      if (m.kind === "length") {
        const d = lengthOf(m.points[0], m.points[1]);
        return hasSpacing ? `${d.toFixed(1)} mm` : `${d.toFixed(1)} px`;
      }
      return `${angleOf(m.points[0], m.points[1], m.points[2]).toFixed(1)}°`;
    }

    function updateList() {
      canvas.dataset.measurements = String(tools.measurements.length);
      if (!list) return;
      list.replaceChildren();
      tools.measurements.forEach((m, i) => {
        const li = document.createElement("li");
        const what = m.kind === "length" ? "Length" : "Angle";
        li.textContent = `${what} ${i + 1}: ${label(m)}`;
        if (!hasSpacing && m.kind === "length") {
          const warn = document.createElement("span");
          warn.className = "badge warn";
          warn.textContent = "no pixel spacing: pixels";
          li.append(" ", warn);
        }
        list.append(li);
      });
    }

    /* --- drawing (hook, canvas CSS pixels) ---------------------------------------------- */
    function strokePath(ctx, pts) {
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
      ctx.lineWidth = 3.5;
      ctx.strokeStyle = "rgba(0,0,0,.8)";
      ctx.stroke();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#ffd54f";
      ctx.stroke();
      for (const p of pts) {
        ctx.beginPath();
        ctx.arc(p.x, p.y, 3, 0, 2 * Math.PI);
        ctx.fillStyle = "#ffd54f";
        ctx.fill();
      }
    }

    function text(ctx, str, x, y) {
      ctx.font = "600 13px system-ui, sans-serif";
      ctx.lineWidth = 4;
      ctx.strokeStyle = "rgba(0,0,0,.9)";
      ctx.strokeText(str, x, y);
      ctx.fillStyle = "#ffd54f";
      ctx.fillText(str, x, y);
    }

    function drawMeasurement(ctx, m, preview) {
      const pts = m.points.map((p) => api.imageToScreen(p.x, p.y));
      strokePath(ctx, pts);
      if (m.points.length < POINTS[m.kind] || preview) return;
      text(ctx, label(m), pts[1].x + 8, pts[1].y - 8); // the end point, or the angle's vertex
    }

    function drawLoupe(ctx) {
      const h = tools.hover;
      if (!tools.magnifier || !h) return;
      ctx.save();
      ctx.beginPath();
      ctx.arc(h.sx, h.sy, LOUPE_RADIUS, 0, 2 * Math.PI);
      ctx.clip();
      ctx.fillStyle = "#000";
      ctx.fillRect(h.sx - LOUPE_RADIUS, h.sy - LOUPE_RADIUS, 2 * LOUPE_RADIUS, 2 * LOUPE_RADIUS);
      const m = new DOMMatrix().translate(h.sx, h.sy).scale(LOUPE_ZOOM).translate(-h.sx, -h.sy)
        .multiply(api.screenMatrix());
      api.drawScene(ctx, m);
      ctx.restore();
      ctx.beginPath();
      ctx.arc(h.sx, h.sy, LOUPE_RADIUS, 0, 2 * Math.PI);
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#4fa3ff";
      ctx.stroke();
    }

    api.onDraw((ctx) => {
      for (const m of tools.measurements) drawMeasurement(ctx, m, false);
      if (tools.tool && tools.pending.length) {
        const pts = tools.pending.slice();
        if (tools.hover) pts.push({ x: tools.hover.ix, y: tools.hover.iy });
        drawMeasurement(ctx, { kind: tools.tool, points: pts }, true);
      }
      drawLoupe(ctx);
      // Reset (r or the button, in the core) turns invert off: the button follows what is drawn.
      if (invertButton && invertButton.getAttribute("aria-pressed") !== String(api.state.invert)) {
        setPressed('[data-tool-action="invert"]', api.state.invert);
      }
    });

    /* --- tool state ---------------------------------------------------------------------- */
    function setPressed(selector, on) {
      document.querySelectorAll(selector).forEach((b) => b.setAttribute("aria-pressed", on ? "true" : "false"));
    }

    function setTool(tool) {
      tools.tool = tool;
      tools.pending = [];
      canvas.dataset.activeTool = tool || "";
      canvas.classList.toggle("measuring", !!tool);
      document.querySelectorAll("button[data-tool]").forEach((b) => {
        b.setAttribute("aria-pressed", b.dataset.tool === tool ? "true" : "false");
      });
      api.schedule();
    }

    function cancel() {
      if (tools.pending.length) tools.pending = [];
      else setTool(null);
      api.schedule();
    }

    function clearMeasurements() {
      tools.measurements = [];
      tools.pending = [];
      updateList();
      api.schedule();
    }

    api.onPointerDown((e, p) => {
      if (!tools.tool) return false;
      const size = api.imageSize();
      if (p.x < 0 || p.y < 0 || p.x > size.width || p.y > size.height) return true; // outside: ignored
      tools.pending.push({ x: p.x, y: p.y });
      if (tools.pending.length === POINTS[tools.tool]) {
        tools.measurements.push({ kind: tools.tool, points: tools.pending });
        tools.pending = [];
        updateList();
      }
      canvas.focus({ preventScroll: true });
      api.schedule();
      e.preventDefault();
      return true;
    });

    function toggleMagnifier() {
      tools.magnifier = !tools.magnifier;
      canvas.dataset.magnifier = String(tools.magnifier);
      setPressed('[data-tool-action="magnifier"]', tools.magnifier);
      api.schedule();
    }

    function toggleInvert() {
      api.setInvert(!api.state.invert);
      setPressed('[data-tool-action="invert"]', api.state.invert);
    }

    /* --- probe ----------------------------------------------------------------------------- */
    let probeTimer = 0;
    let probeAbort = null;
    let probeKey = "";

    function toggleProbe() {
      tools.probe = !tools.probe;
      canvas.dataset.probe = String(tools.probe);
      setPressed('[data-tool-action="probe"]', tools.probe);
      if (probeOut) probeOut.textContent = tools.probe ? "probe: point at the image" : "";
      probeKey = "";
      if (tools.probe) probe();
    }

    function fmt(v) {
      return Number.isInteger(v) ? String(v) : v.toFixed(2);
    }

    function probe() {
      if (!tools.probe || !probeOut || !tools.hover) return;
      const x = Math.floor(tools.hover.ix);
      const y = Math.floor(tools.hover.iy);
      const size = api.imageSize();
      if (x < 0 || y < 0 || x >= size.width || y >= size.height) {
        probeOut.textContent = "probe: outside the image";
        probeKey = "";
        return;
      }
      const key = `${x},${y}`;
      if (key === probeKey) return;
      probeKey = key;
      const display = api.greyAt(x, y);
      if (!isDicom || !root.dataset.probeUrl) {
        probeOut.textContent = `x ${x}, y ${y}: ${display} (8-bit display value; no stored units)`;
        return;
      }
      clearTimeout(probeTimer);
      probeTimer = setTimeout(() => {
        if (probeAbort) probeAbort.abort();
        probeAbort = new AbortController();
        const url = `${root.dataset.probeUrl}?x=${x}&y=${y}`;
        fetch(url, { signal: probeAbort.signal, credentials: "same-origin", headers: { Accept: "application/json" } })
          .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
          .then(({ ok, body }) => {
            if (probeKey !== key) return;
            if (!ok) {
              probeOut.textContent = `probe: ${body.error || "unavailable"}`;
              return;
            }
            let out = `x ${x}, y ${y}: stored ${body.stored.map(fmt).join(", ")}`;
            // RescaleType "US" means unspecified units: shown as no unit.
            const units = body.units && body.units !== "US" ? ` ${body.units}` : "";
            if (body.rescaled) out += ` → ${body.rescaled.map(fmt).join(", ")}${units}`;
            probeOut.textContent = `${out} (display ${display})`;
          })
          .catch((err) => {
            if (err.name !== "AbortError") probeOut.textContent = "probe: request failed";
          });
      }, 150);
    }

    /* --- pointer tracking ---------------------------------------------------------------- */
    canvas.addEventListener("pointermove", (e) => {
      const p = api.screenToImage(e.offsetX, e.offsetY);
      tools.hover = { sx: e.offsetX, sy: e.offsetY, ix: p.x, iy: p.y };
      if (tools.magnifier || tools.pending.length) api.schedule();
      probe();
    });
    canvas.addEventListener("pointerleave", () => {
      tools.hover = null;
      if (tools.magnifier || tools.pending.length) api.schedule();
    });

    /* --- full screen ----------------------------------------------------------------------- */
    const fsTarget = root.closest(".viewer-col") || root;

    function toggleFullscreen() {
      if (!document.fullscreenEnabled) return;
      if (document.fullscreenElement) document.exitFullscreen();
      else fsTarget.requestFullscreen().catch(() => {});
    }

    document.addEventListener("fullscreenchange", () => {
      setPressed('[data-tool-action="fullscreen"]', document.fullscreenElement === fsTarget);
      requestAnimationFrame(() => api.fit());
    });

    /* --- buttons and keys ------------------------------------------------------------------ */
    const actions = {
      invert: toggleInvert,
      "rotate-left": () => api.rotate(-1),
      "rotate-right": () => api.rotate(1),
      "flip-h": () => api.flip("h"),
      "flip-v": () => api.flip("v"),
      clear: clearMeasurements,
      magnifier: toggleMagnifier,
      probe: toggleProbe,
      fullscreen: toggleFullscreen,
    };

    document.addEventListener("click", (e) => {
      const target = e.target.closest("button[data-tool-action], button[data-tool]");
      if (!target) return;
      if (target.dataset.tool) setTool(tools.tool === target.dataset.tool ? null : target.dataset.tool);
      else if (actions[target.dataset.toolAction]) actions[target.dataset.toolAction]();
    });


    const KEYS = {
      i: toggleInvert, "[": () => api.rotate(-1), "]": () => api.rotate(1), h: () => api.flip("h"),
      v: () => api.flip("v"), l: () => setTool(tools.tool === "length" ? null : "length"),
      g: () => setTool(tools.tool === "angle" ? null : "angle"), m: toggleMagnifier, p: toggleProbe,
      f: toggleFullscreen, Escape: cancel,
    };
    const PAN = { ArrowLeft: [40, 0], ArrowRight: [-40, 0], ArrowUp: [0, 40], ArrowDown: [0, -40] };

    document.addEventListener("keydown", (e) => {
      const t = e.target;
      const control = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
      const typing = control && !(t.type === "checkbox" || t.type === "range" || t.type === "radio");
      if (e.ctrlKey || e.metaKey || e.altKey || (help && help.open) || !api.state.ready) return;
      if (PAN[e.key]) {
        if (control) return; // arrows move radio buttons and sliders
        const [dx, dy] = PAN[e.key];
        if (e.shiftKey) {
          // shift+left/right: window width; shift+up/down: level (display units)
          const s = api.state;
          if (dx) api.setWindow(s.center, s.width + (dx > 0 ? -8 : 8));
          else api.setWindow(s.center + (dy > 0 ? 4 : -4), s.width);
        } else {
          api.panBy(dx, dy);
        }
      } else if (typing) {
        return;
      } else if (e.key === "+" || e.key === "=" || e.key === "-" || e.key === "_") {
        const rect = canvas.getBoundingClientRect();
        api.zoomAt(rect.width / 2, rect.height / 2, e.key === "+" || e.key === "=" ? 1.25 : 0.8);
      } else if (KEYS[e.key] && !(e.key === "Escape" && !tools.tool && !tools.pending.length)) {
        KEYS[e.key]();
      } else {
        return;
      }
      e.preventDefault();
    });

    canvas.dataset.activeTool = "";
    canvas.dataset.measurements = "0";
    canvas.dataset.magnifier = "false";
    canvas.dataset.probe = "false";
  }

  if (window.RadViewerViewer) start(window.RadViewerViewer);
  else document.addEventListener("radviewer:viewer-ready", (e) => start(e.detail), { once: true });
})();
