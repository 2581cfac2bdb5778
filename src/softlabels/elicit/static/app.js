// Participant page of `softlabels elicit serve`: plain JavaScript, no external code.
// Soft-label form (thesis §3.2, Fig. A.1): most probable class + probability, optional second class +
// probability, classes that are definitely not in the image. Mixing task (thesis §4.2.1, Fig. A.2): share of
// each of the two classes (slider) and a confidence rating. Keyboard first: number keys pick classes, Enter
// moves on; Enter on a button that has the focus (Tab) presses that button. The same checks run again on the
// server (softlabels/elicit/validate.py). Every address is relative to the page, so the app can sit under a
// proxy's sub-path. The link carries the participant ID and its signature; every request sends both.
"use strict";

const app = document.getElementById("app");
const params = new URLSearchParams(window.location.search);
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];
let study = null, participant = "", sig = "", batch = null, keyHandler = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function show(...nodes) {
  app.replaceChildren(...nodes);
}

function setKeys(handler) {
  if (keyHandler) document.removeEventListener("keydown", keyHandler);
  // Enter (or Space) on a focused button is the button's own: the browser presses it.
  keyHandler = handler ? (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target instanceof HTMLButtonElement) return;
    handler(e);
  } : null;
  if (keyHandler) document.addEventListener("keydown", keyHandler);
}

function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { data = { error: "unreadable answer from the server" }; }
  return { status: res.status, data };
}

function crowd() {
  return study.framing === "third_person" ? `${study.crowd_size} crowdsourced workers` : "you";
}

function fatal(message) {
  setKeys(null);
  show(el("h1", {}, study ? study.title : "Study"), el("p", { class: "error", id: "fatal" }, message));
}

// ------------------------------------------------------------------------------------------------ start
async function start() {
  const info = await api("api/study");
  study = info.data;
  document.title = study.title;
  participant = params.get(study.participant_param) || "";
  sig = params.get(study.sig_param) || "";
  if (!participant) {
    return fatal(`This link has no participant ID (URL parameter ${study.participant_param}). ` +
                 "Please use the link you were given.");
  }
  if (!sig) return fatal("This link is incomplete (it has no signature). Please use the exact link you were given.");
  const go = () => loadBatch();
  const parts = [el("h1", {}, study.title)];
  if (study.consent) parts.push(el("div", { class: "consent" }, ...study.consent.split("\n\n").map((p) => el("p", {}, p))));
  if (study.instructions) parts.push(el("div", { class: "instructions" }, ...study.instructions.split("\n\n").map((p) => el("p", {}, p))));
  parts.push(el("p", { class: "hint" }, study.task === "soft_label"
    ? "Keyboard: press a class's number key to choose it, type the probability, press Enter to go on."
    : "Keyboard: arrow keys move the slider (PageUp/PageDown by 10), Enter goes on."));
  parts.push(el("button", { class: "primary", id: "start", onclick: go }, "Start (Enter)"));
  show(...parts);
  setKeys((e) => { if (e.key === "Enter") { e.preventDefault(); go(); } });
}

async function loadBatch() {
  setKeys(null);
  const res = await api("api/batch", { participant, sig });
  if (res.status !== 200) return fatal(res.data.error || `server error ${res.status}`);
  if (res.data.status === "done") return finish(res.data.completion || {}, true);
  if (res.data.status === "full") return full(res.data.return_url || "");
  batch = res.data;
  nextTrial();
}

function nextTrial() {
  const index = batch.trials.findIndex((t) => !t.answered);
  if (index < 0) return finish(batch.completion || {}, false);
  const trial = batch.trials[index];
  trial.number = index + 1;
  if (study.task === "soft_label") softLabelTrial(trial); else mixingTrial(trial);
}

function finish(completion, before) {
  setKeys(null);
  const parts = [el("h1", {}, study.title),
    el("p", { class: "done", id: "done" }, before ? "You have already completed this study. Thank you!" : "All done. Thank you!")];
  if (completion.code) parts.push(el("p", {}, "Your completion code: ", el("span", { class: "code", id: "code" }, completion.code)));
  if (completion.url) parts.push(el("p", {}, el("a", { href: completion.url, id: "completion" }, "Return to the recruiting site")));
  show(...parts);
}

// Nothing left to hand out: tell the participant what to do (and that it is not their fault).
function full(returnUrl) {
  setKeys(null);
  const parts = [el("h1", {}, study.title),
    el("p", { id: "full" }, "Sorry: every image of this study has enough answers already, so there is nothing " +
       "left for you to do. Please return your submission on the recruiting site (do not enter a completion " +
       "code); you will not be penalised.")];
  if (returnUrl) parts.push(el("p", {}, el("a", { href: returnUrl, id: "return" }, "Return to the recruiting site")));
  show(...parts);
}

function stimulusImage(trial, onload) {
  const img = el("img", { class: "stimulus", id: "stimulus", width: study.display_px, height: study.display_px, alt: "image" });
  img.addEventListener("load", onload, { once: true });
  img.src = `${trial.image}?participant=${encodeURIComponent(participant)}&sig=${encodeURIComponent(sig)}`;
  return img;
}

function header(trial) {
  return el("div", {}, el("span", { class: "progress", id: "progress" }, `Trial ${trial.number} of ${batch.trials.length}`),
            el("h1", {}, study.title));
}

// Submits one answer, retrying network failures with the same submission id (the server stores it once).
async function submit(trial, answer, rt, errorLine) {
  if (!trial.submission) trial.submission = newId();
  const body = { submission_id: trial.submission, participant, sig, batch: batch.batch, position: trial.position, answer, rt_ms: rt };
  for (let attempt = 0; attempt < 6; attempt++) {
    let res;
    try {
      res = await api("api/response", body);
    } catch (e) {
      errorLine.textContent = "Connection problem; retrying…";
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
      continue;
    }
    if (res.status === 200 || res.status === 409) {
      trial.answered = true;
      if (res.data.completion) batch.completion = res.data.completion;
      nextTrial();
      return;
    }
    if (res.status === 410 || res.status === 403) return fatal(res.data.error);
    errorLine.textContent = res.data.error || `server error ${res.status}`;
    return;
  }
  errorLine.textContent = "The server cannot be reached. Please check your connection and press Enter again.";
}

// --------------------------------------------------------------------------------------- soft-label form
function softLabelTrial(trial) {
  const classes = batch.classes;
  const state = { stage: 0, top: "", second: "", impossible: new Set(), t0: null };
  const error = el("p", { class: "error", id: "error" });
  const topProb = el("input", { type: "number", id: "top-prob", min: 0, max: 100, step: "any", "aria-label": "probability of the most probable class" });
  const secondProb = el("input", { type: "number", id: "second-prob", min: 0, max: 100, step: "any", "aria-label": "probability of the second class" });
  const rows = {};
  const who = crowd();
  const they = study.framing === "third_person" ? "they" : "you";

  function buttons(kind, extra) {
    const box = el("div", { class: "classes", id: `${kind}-classes` });
    classes.forEach((c, i) => {
      const b = el("button", { type: "button", "data-class": c, onclick: () => pick(kind, c) },
                   ...(i < KEYS.length ? [el("kbd", {}, KEYS[i])] : []), c);
      box.append(b);
    });
    if (extra) box.append(extra);
    rows[kind] = box;
    return box;
  }
  const none = el("button", { type: "button", id: "no-second", onclick: () => pick("second", "") }, el("kbd", {}, "N"), "no alternative");
  const sections = [
    el("section", { id: "s-top" },
       el("p", {}, `Which category would ${who} select as `, el("b", {}, "most probably"), " the true category of the image?"),
       buttons("top"),
       el("label", {}, `What probability (0–100) would ${they} give it? `, topProb, " %")),
    el("section", { id: "s-second" },
       el("p", {}, `Which category, if any, would ${they} select as the `, el("b", {}, "second most probable"), "?"),
       buttons("second", none),
       el("label", {}, "Its probability (0–100): ", secondProb, " %")),
    el("section", { id: "s-not" },
       el("p", {}, `Which categories would ${they} say are `, el("b", {}, "definitely not"), " in the image? (any number)"),
       buttons("not")),
  ];
  const go = el("button", { class: "primary", id: "continue", type: "button", onclick: () => advance(true) }, "Continue (Enter)");

  function refresh() {
    sections.forEach((s, i) => s.classList.toggle("active", i === state.stage));
    for (const b of rows.top.querySelectorAll("button")) b.classList.toggle("chosen", b.dataset.class === state.top);
    for (const b of rows.second.querySelectorAll("button[data-class]")) {
      b.classList.toggle("chosen", b.dataset.class === state.second);
      b.disabled = b.dataset.class === state.top;
    }
    none.classList.toggle("chosen", state.stage > 1 && !state.second);
    secondProb.disabled = !state.second;
    for (const b of rows.not.querySelectorAll("button")) {
      b.classList.toggle("excluded", state.impossible.has(b.dataset.class));
      b.disabled = b.dataset.class === state.top || b.dataset.class === state.second;
    }
  }

  function pick(kind, c) {
    error.textContent = "";
    if (kind === "top") {
      state.top = c; if (state.second === c) state.second = ""; state.impossible.delete(c);
      state.stage = 0; refresh(); topProb.focus();
    } else if (kind === "second") {
      if (c === state.top) return;
      state.second = c; state.impossible.delete(c); state.stage = 1; refresh();
      if (c) secondProb.focus(); else { secondProb.value = ""; state.stage = 2; refresh(); document.activeElement.blur(); }
    } else {
      if (c === state.top || c === state.second) return;
      if (state.impossible.has(c)) state.impossible.delete(c); else state.impossible.add(c);
      state.stage = 2; refresh();
    }
  }

  function number(input) {
    const text = input.value.trim();
    return text === "" ? NaN : Number(text);
  }

  // The page's checks (the server repeats them); returns a message or "".
  function check(upTo) {
    if (!state.top) return "Choose the most probable category.";
    const p1 = number(topProb);
    if (!(p1 >= 0 && p1 <= 100)) return "The probability of the most probable category must be a number between 0 and 100.";
    if (upTo < 1) return "";
    if (state.second) {
      const p2 = number(secondProb);
      if (!(p2 >= 0 && p2 <= 100)) return "The probability of the second category must be a number between 0 and 100.";
      if (p1 + p2 > 100) return `The two probabilities add up to ${p1 + p2}; together they can be at most 100.`;
    }
    return "";
  }

  function advance(final) {
    const target = final ? 2 : state.stage;
    const message = check(target);
    if (message) { error.textContent = message; return; }
    error.textContent = "";
    if (!final && state.stage < 2) {
      state.stage += 1; refresh(); document.activeElement.blur();
      return;
    }
    if (state.t0 === null) { error.textContent = "Please wait until the image has loaded."; return; }
    const answer = { top_class: state.top, top_prob: number(topProb), second_class: state.second,
                     second_prob: state.second ? number(secondProb) : null, impossible: [...state.impossible] };
    const rt = performance.now() - state.t0;
    go.disabled = true;
    submit(trial, answer, Math.max(1, Math.round(rt)), error).finally(() => { go.disabled = false; });
  }

  const framing = study.framing === "third_person"
    ? el("p", { class: "framing" }, `Imagine ${study.crowd_size} crowdsourced workers see the image below. Answer as you think they would.`)
    : el("p", { class: "framing" }, "Look at the image below.");
  show(header(trial), framing, stimulusImage(trial, () => { state.t0 = performance.now(); }), ...sections, error, go);
  refresh();
  setKeys((e) => {
    const inInput = e.target instanceof HTMLInputElement;
    if (e.key === "Enter") { e.preventDefault(); advance(state.stage === 2); return; }
    if (inInput) return;
    if (e.key === "n" || e.key === "N") { if (state.stage === 1) { e.preventDefault(); pick("second", ""); } return; }
    const i = KEYS.indexOf(e.key);
    if (i < 0 || i >= classes.length) return;
    e.preventDefault();
    pick(["top", "second", "not"][state.stage], classes[i]);
  });
}

// ------------------------------------------------------------------------------------------- mixing task
function mixingTrial(trial) {
  const [left, right] = trial.classes;
  const state = { t0: null, stage: 0, moved: false, confMoved: false };
  const error = el("p", { class: "error", id: "error" });
  const share = el("input", { type: "range", id: "share", min: 0, max: 100, step: 1, value: 50, "aria-label": `share of ${right}` });
  const confidence = el("input", { type: "range", id: "confidence", min: 0, max: 100, step: 1, value: 50, "aria-label": "confidence" });
  const readout = el("p", { class: "readout", id: "share-readout" });
  const confReadout = el("span", { id: "confidence-readout" });
  const update = () => {
    readout.textContent = `${left} ${100 - share.value}% · ${right} ${share.value}%`;
    confReadout.textContent = `${confidence.value} / 100`;
  };
  share.addEventListener("input", () => { state.moved = true; update(); });
  confidence.addEventListener("input", () => { state.confMoved = true; update(); });
  const who = crowd();
  const s1 = el("section", { id: "s-share" },
    el("p", {}, `What combination of the two classes do you think ${study.framing === "third_person" ? "they" : "you"} would say was used to make this image?`),
    el("div", { class: "slider-row" }, el("span", { class: "end" }, `${left}`), share, el("span", { class: "end right" }, `${right}`)),
    readout);
  const s2 = el("section", { id: "s-confidence" },
    el("p", {}, `How confident would ${study.framing === "third_person" ? "they" : "you"} be in this answer? `, confReadout),
    el("div", { class: "slider-row" }, el("span", { class: "end" }, "not at all"), confidence, el("span", { class: "end right" }, "completely")));
  const go = el("button", { class: "primary", id: "continue", type: "button", onclick: () => advance(true) }, "Continue (Enter)");

  function refresh() {
    s1.classList.toggle("active", state.stage === 0);
    s2.classList.toggle("active", state.stage === 1);
  }
  function advance(final) {
    if (state.t0 === null) { error.textContent = "Please wait until the image has loaded."; return; }
    if (!state.moved) {
      error.textContent = "Move the upper slider to your answer first (arrow keys or the mouse; for 50/50 move it away and back).";
      state.stage = 0; refresh(); share.focus(); return;
    }
    error.textContent = "";
    if (state.stage === 0 && !final) { state.stage = 1; refresh(); confidence.focus(); return; }
    if (!state.confMoved) {
      error.textContent = "Set your confidence with the lower slider first (arrow keys or the mouse).";
      state.stage = 1; refresh(); confidence.focus(); return;
    }
    const a = { share: Number(share.value), confidence: Number(confidence.value) };
    if (!(a.share >= 0 && a.share <= 100) || !(a.confidence >= 0 && a.confidence <= 100)) {
      error.textContent = "Both sliders must lie between 0 and 100."; return;
    }
    const rt = performance.now() - state.t0;
    go.disabled = true;
    submit(trial, a, Math.max(1, Math.round(rt)), error).finally(() => { go.disabled = false; });
  }
  const framing = el("p", { class: "framing", id: "framing" },
    `Imagine ${who} are told that the image below is a combination of an image of a `, el("b", {}, left),
    " and an image of a ", el("b", {}, right), ".");
  show(header(trial), framing, stimulusImage(trial, () => { state.t0 = performance.now(); }), s1, s2, error, go);
  update(); refresh(); share.focus();
  setKeys((e) => { if (e.key === "Enter") { e.preventDefault(); advance(false); } });
}

start().catch((e) => fatal(`The study page failed to start: ${e}`));
