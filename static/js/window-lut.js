/* The display window shared by the study viewer (viewer.js) and the side-by-side compare
 * page (compare.js): the presets, in display space, and the lookup table that applies one.
 *
 * Display space: the browser only has the 8-bit display image the server made through the
 * Modality and VOI LUTs; "Default" (centre 127.5, width 255) is the identity there. Lung /
 * Soft tissue / Bone are relative windows (see viewer.js's header), High / Low contrast are
 * the retinal OCT ones.
 */
(function () {
  "use strict";

  const PRESETS = Object.freeze({
    default: Object.freeze({ center: 127.5, width: 255 }),
    lung: Object.freeze({ center: 80, width: 150 }),
    soft: Object.freeze({ center: 128, width: 110 }),
    bone: Object.freeze({ center: 185, width: 120 }),
    // Retinal OCT (the page offers these instead of the chest ones when #viewer has
    // data-presets="oct"): more or less contrast over the whole range, no tissue classes.
    high: Object.freeze({ center: 110, width: 130 }),
    low: Object.freeze({ center: 127.5, width: 400 }),
  });

  /* DICOM PS3.3 C.11.2.1.2.1 linear window function, in display units: a 256-entry table. */
  function buildLut(center, width) {
    const lut = new Uint8Array(256);
    const w = Math.max(width, 2);
    const lo = center - 0.5 - (w - 1) / 2;
    const hi = center - 0.5 + (w - 1) / 2;
    for (let v = 0; v < 256; v++) {
      if (v <= lo) lut[v] = 0;
      else if (v > hi) lut[v] = 255;
      else lut[v] = Math.round(((v - (center - 0.5)) / (w - 1) + 0.5) * 255);
    }
    return lut;
  }

  window.RadViewerWindow = Object.freeze({ PRESETS, buildLut });
})();
