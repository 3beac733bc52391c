/* RadViewer reading form keys (study page), no framework.
 *
 * - a: agree with the AI and save, only when the AI result is finished, in scope and shown.
 *   The AI panel (re-rendered while triage runs) carries data-agree-refusal: when it is not
 *   empty, `a` saves nothing and says why in the panel's status line (role=status). The
 *   server refuses such an "agree" too.
 * - 1-9: choose the class with that number in the reading form's list (the study's scope's
 *   classes first). It only selects: the AI's own top class selects "Agree with AI" (when
 *   agreeing is possible), any other class "Corrected to". A stray digit never saves.
 * - Enter: save the reading chosen with the keys (or the button, as before).
 * - After a save, the panel shows "Saved: ... Undo (10 s)"; the countdown here only hides the
 *   button when the window closes (the server refuses an undo after it anyway).
 */
(function () {
  "use strict";

  function form() { return document.getElementById("review-form"); }

  function say(text) {
    const status = document.getElementById("reading-status");
    if (status) status.textContent = text;
  }

  function aiPanel() { return document.getElementById("ai-panel"); }

  function agreeRefusal() {
    const panel = aiPanel();
    if (!panel) return "There is no AI result to agree with; choose a class (1-9) and save.";
    return panel.dataset.agreeRefusal || "";
  }

  function radio(f, value) {
    return f.querySelector('input[name="verdict"][value="' + value + '"]');
  }

  function agree() {
    const f = form();
    if (!f) return;
    const refusal = agreeRefusal();
    const agreeRadio = radio(f, "agree");
    if (refusal || !agreeRadio) {
      say(refusal || "Agreeing with the AI is not available here; choose a class (1-9) and save.");
      return;
    }
    agreeRadio.checked = true;
    f.requestSubmit();
  }

  function chooseClass(n) {
    const f = form();
    if (!f) return false;
    const select = f.querySelector('select[name="label"]');
    const option = select && select.querySelector('option[data-n="' + n + '"]');
    if (!option) return false;
    select.value = option.value;
    const top = (aiPanel() && aiPanel().dataset.topClass) || "";
    const agreeRadio = radio(f, "agree");
    const useAgree = agreeRadio && top && option.value === top && !agreeRefusal();
    const target = useAgree ? agreeRadio : radio(f, "corrected");
    if (target) target.checked = true;
    f.dataset.keyChosen = "1";
    const name = option.textContent.replace(/^\s*\d+\s*·\s*/, "").trim();
    say("Class " + n + ": " + name + (useAgree ? " (the AI's class: Agree with AI)" : "") +
        " selected. Press Enter to save.");
    return true;
  }

  function save() {
    const f = form();
    if (!f || !f.querySelector('input[name="verdict"]:checked')) return false;
    f.requestSubmit();
    return true;
  }

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    const help = document.getElementById("shortcut-help");
    if (help && help.open) return;
    const typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) &&
      !(t.type === "checkbox" || t.type === "range" || t.type === "radio");
    if (typing) return;
    if (e.key === "a") {
      agree();
    } else if (/^[1-9]$/.test(e.key)) {
      if (!chooseClass(e.key)) return;
    } else if (e.key === "Enter") {
      // Enter on a button or link does what it does; elsewhere it saves a key-chosen reading.
      if (t && /^(BUTTON|A|SUMMARY)$/.test(t.tagName)) return;
      const f = form();
      if (!f || f.dataset.keyChosen !== "1" || !save()) return;
    } else {
      return;
    }
    e.preventDefault();
  });

  // The undo countdown of a just-saved reading.
  // htmx settles often (the AI panel polls): a box already counting keeps its countdown.
  let timer = null;
  let counting = null;
  function startCountdown() {
    const box = document.querySelector(".saved-undo[data-undo-seconds]");
    if (box === counting) return;
    if (timer) { clearInterval(timer); timer = null; }
    counting = box;
    if (!box) return;
    let left = parseInt(box.dataset.undoSeconds, 10) || 0;
    const seconds = box.querySelector(".undo-seconds");
    const tick = () => {
      if (!document.body.contains(box)) { clearInterval(timer); timer = null; return; }
      if (left <= 0) {
        clearInterval(timer);
        timer = null;
        const undoForm = box.querySelector(".undo-form");
        if (undoForm) undoForm.remove();
        box.classList.add("expired");
        return;
      }
      if (seconds) seconds.textContent = String(left);
      left -= 1;
    };
    tick();
    timer = setInterval(tick, 1000);
  }

  document.addEventListener("htmx:afterSettle", startCountdown);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startCountdown);
  } else {
    startCountdown();
  }
})();
