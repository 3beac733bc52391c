/* RadViewer heat-map legend and top-attention region (issue #14 item 12).
 *
 * Hooks into the viewer (static/js/viewer.js, window.radViewer.onRender):
 * - the legend under the canvas names the drawn overlay's method and the class it explains
 *   (from the data-overlay-method / data-overlay-class attributes of the server's overlay
 *   announcements; an empty class means the map is not class-specific) and is shown only
 *   while an overlay is drawn;
 * - "Top-attention region" draws the outline (contour) or bounding box of the map's
 *   highest-attention region, fetched as JSON in image pixels from the server
 *   (clinical.selectors.overlays.attention_region), in image coordinates so it follows
 *   zoom and pan;
 * - after the AI panel's "Explain class" select swaps the attribution block, the viewer
 *   switches to the same method's map for the new class when that map is ready.
 */
(function () {
  "use strict";

  const viewer = window.radViewer;
  const legend = document.getElementById("overlay-legend");
  if (!viewer || !legend) return;
  const methodEl = document.getElementById("overlay-legend-method");
  const classEl = document.getElementById("overlay-legend-class");
  const regionSelect = document.getElementById("overlay-region");
  const canvas = document.getElementById("viewer-canvas");

  const meta = new Map(); // overlay source -> {method, cls, regionUrl}
  const regions = new Map(); // overlay source -> {state: "loading"|"ready"|"failed", region}
  let shown = null; // the source the legend describes

  function scan() {
    document.querySelectorAll("[data-overlay-source][data-overlay-url]").forEach((el) => {
      meta.set(el.dataset.overlaySource, {
        method: el.dataset.overlayMethod || el.dataset.overlayLabel || el.dataset.overlaySource,
        cls: el.dataset.overlayClass || "",
        regionUrl: el.dataset.overlayRegionUrl || "",
      });
    });
  }

  function updateLegend(source) {
    if (source === shown) return;
    shown = source;
    const m = source && meta.get(source);
    legend.hidden = !m;
    legend.dataset.source = m ? source : "";
    if (!m) return;
    methodEl.textContent = m.method;
    classEl.textContent = m.cls ? `class explained: ${m.cls}` : "attention map, not class-specific";
  }

  function region(source) {
    const m = meta.get(source);
    if (!m || !m.regionUrl) return null;
    let entry = regions.get(source);
    if (!entry) {
      entry = { state: "loading", region: null };
      regions.set(source, entry);
      fetch(m.regionUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
        .then((data) => { entry.state = "ready"; entry.region = data.region; })
        .catch(() => { entry.state = "failed"; })
        .finally(() => viewer.schedule());
    }
    return entry.state === "ready" ? entry.region : null;
  }

  function drawRegion(ctx, r, mode, scale) {
    const outlinePath = () => {
      ctx.beginPath();
      if (mode === "box") {
        const [x0, y0, x1, y1] = r.box;
        ctx.rect(x0, y0, x1 - x0, y1 - y0);
      } else {
        r.outline.forEach(([x0, y0, x1, y1]) => { ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); });
      }
    };
    ctx.save();
    ctx.lineCap = "square";
    outlinePath();
    ctx.strokeStyle = "rgba(0, 0, 0, 0.85)"; // dark halo: the line reads on bright and dark pixels
    ctx.lineWidth = 4 / scale;
    ctx.stroke();
    outlinePath();
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 2 / scale;
    ctx.stroke();
    ctx.restore();
  }

  viewer.onRender((ctx, frame) => {
    if (frame.overlay && !meta.has(frame.overlay)) scan();
    updateLegend(frame.overlay);
    const mode = regionSelect ? regionSelect.value : "";
    const r = frame.overlay && mode ? region(frame.overlay) : null;
    if (r) drawRegion(ctx, r, mode, frame.scale);
    canvas.dataset.region = r ? mode : "";
  });

  if (regionSelect) regionSelect.addEventListener("change", () => viewer.schedule());

  const chosenClass = () => {
    const select = document.getElementById("explain-class");
    return select ? select.value : "";
  };
  let lastClass = chosenClass();

  document.addEventListener("htmx:afterSettle", () => {
    scan();
    const cls = chosenClass();
    const current = viewer.state.overlaySource;
    if (cls !== lastClass && current && current !== "attention") {
      // another class was chosen: the same method's map for it, if that map is ready
      const method = current.split(":")[0];
      const el = document.querySelector(`#attribution-${CSS.escape(method)} [data-overlay-source][data-overlay-url]`);
      // viewer.js registers the new source on this same event: select it right after
      if (el) window.setTimeout(() => viewer.selectOverlay(el.dataset.overlaySource), 0);
    }
    lastClass = cls;
    shown = null; // labels may have changed
    viewer.schedule();
  });

  scan();
})();
