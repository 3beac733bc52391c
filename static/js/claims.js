/* Reading claims (issue 14 item 9): while its reader is active on the study page, tell the
   server every data-claim-heartbeat-s seconds so the claim ("being read by X") does not lapse.
   An idle or hidden tab sends nothing, so an abandoned page lets the claim expire. The banner
   (#claim-banner) carries hx-post only while there is a claim to keep; htmx swaps it with the
   answer, which also shows whether another reader took the study over. */
(function () {
  "use strict";
  let active = false;
  const mark = function () { active = true; };
  ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"].forEach(function (type) {
    document.addEventListener(type, mark, { passive: true, capture: true });
  });

  function beat() {
    const banner = document.getElementById("claim-banner");
    if (!banner || !banner.hasAttribute("hx-post") || !active || document.hidden || !window.htmx) {
      return;
    }
    active = false;
    window.htmx.trigger(banner, "claim-heartbeat");
  }

  function start() {
    const banner = document.getElementById("claim-banner");
    const seconds = banner ? parseInt(banner.dataset.claimHeartbeatS, 10) : 0;
    if (seconds > 0) {
      window.setInterval(beat, seconds * 1000);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
