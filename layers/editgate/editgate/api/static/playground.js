"use strict";
// The API is where this page is: <base>/playground -> <base>/v1/...
const BASE = location.pathname.replace(/\/playground\/?$/, "");
const API = `${BASE}/v1`;
const KEY_STORE = "editgate.key";
// Set by the form's own fields, not by a model's parameters.
const FORM_FIELDS = new Set(["prompt", "image", "size", "aspect_ratio", "resolution", "fit", "n", "response_format", "output_format", "output_compression"]);
const FORM_IDS = ["model", "n", "size", "aspect_ratio", "resolution", "fit", "output_format", "response_format"];
// The parameters the openai Python SDK's images.edit takes by name; the others go in extra_body.
const PYTHON_SDK_ARGUMENTS = new Set(["prompt", "model", "n", "size", "response_format", "output_format", "output_compression"]);
// A model parameter's label and hint, in words (any other: its name).
const PARAM_WORDS = {
  seed: ["Seed", "The same seed and settings give the same images. Left empty, Edit picks one; New variation picks another."],
  cfg_scale: ["Prompt strength", "How closely to follow what you asked"],
  image_guidance_scale: ["Image strength", "How much of the input to keep"],
  num_inference_steps: ["Steps", "More is slower and can be finer"],
  negative_prompt: ["What to avoid", "Things that should not appear"],
  target_image_description: ["The result, described", "Optional: what the edited image shows"],
  enable_safety_checker: ["Safety checker", "The operator decides whether it may be off"],
  sync_mode: ["Sync mode", "How fal hands over its images"],
  keep_original_aspect: ["Keep the input's shape", ""],
};
const $ = (id) => document.getElementById(id);
let models = [];
let input = null;      // the image to edit: { file, url, fromResult } (url: an object URL for previews)
let busy = false;      // a request of this page is running: no second one
let codeLang = "curl";

// Under the button, and (while a request runs) where the user looks.
function setStatus(text) { $("status").textContent = text; $("activity-text").textContent = text; }

function narrow() { return window.matchMedia("(max-width: 820px)").matches; }

// Scrolls only as far as it takes to see the element whole.
function reveal(element) { element.scrollIntoView({ block: "nearest", behavior: "smooth" }); }

function showError(status, body) {
  const box = $("error");
  const error = body && body.error;
  if (error) {
    const where = [error.code, error.param ? `param: ${error.param}` : null].filter(Boolean).join(", ");
    box.textContent = `${status} ${where ? `(${where})` : ""}\n${error.message}`;
  } else {
    box.textContent = `${status || "Network error"}: the answer was not an API error.`;
  }
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

function clearDryRun() { $("dry-run").hidden = true; }

function key() { return sessionStorage.getItem(KEY_STORE) || ""; }

function fillSelect(select, values, blank) {
  select.replaceChildren();
  if (blank !== undefined) select.append(new Option(blank, ""));
  for (const value of values) select.append(new Option(value, value));
}

async function loadModels() {
  clearError();
  setStatus("Loading models…");
  const response = await fetch(`${API}/models`, { headers: { Authorization: `Bearer ${key()}` } });
  const body = await response.json().catch(() => null);
  if (!response.ok) { setStatus(""); showError(response.status, body); return; }
  models = body.data;
  fillSelect($("model"), models.map((m) => m.id));
  showModel();
  setStatus(`${models.length} models. Choose an image and say what to change.`);
}

function currentModel() { return models.find((m) => m.id === $("model").value); }

function showModel() {
  const model = currentModel();
  if (!model) return;
  const caps = model.editgate;
  const price = caps.price.usd_per_image != null ? `$${caps.price.usd_per_image} an image` : `$${caps.price.usd_per_megapixel} a megapixel`;
  $("model-description").textContent = `${caps.description} (${price})`;
  fillSelect($("aspect_ratio"), caps.aspect_ratios, "as the input");
  fillSelect($("resolution"), caps.resolution_tiers, "as the input");
  fillSelect($("fit"), caps.parameters.fit.values);
  fillSelect($("output_format"), caps.output_formats.all);
  fillSelect($("response_format"), caps.parameters.response_format.values);
  $("response_format").value = "b64_json";  // results in the answer: Edit again can use them as they are
  $("n").max = caps.max_n;
  const holder = $("model-params");
  holder.replaceChildren();
  for (const [name, spec] of Object.entries(caps.parameters)) {
    if (FORM_FIELDS.has(name) || !spec.type) continue;  // ignored, refused or set above
    holder.append(paramField(name, spec));
  }
  showCode();
}

function paramField(name, spec) {
  const [words, hint] = PARAM_WORDS[name] || [name.replaceAll("_", " "), ""];
  const wrap = document.createElement("div");
  const label = document.createElement("label");
  label.htmlFor = `param-${name}`;
  label.textContent = words;
  let field;
  if (spec.type === "bool") {
    field = document.createElement("select");
    fillSelect(field, ["true", "false"], "model default");
  } else if (spec.type === "str") {
    field = document.createElement("textarea");
    if (spec.max_length) field.maxLength = spec.max_length;
    wrap.style.gridColumn = "1 / -1";
  } else {
    field = document.createElement("input");
    field.type = "number";
    field.step = spec.type === "int" ? "1" : "any";
    if (spec.ge != null) field.min = spec.ge;
    if (spec.le != null) field.max = spec.le;
    field.placeholder = spec.ge != null && spec.le != null ? `${spec.ge}–${spec.le}` : "";
  }
  field.id = `param-${name}`;
  field.dataset.param = name;
  wrap.append(label, field);
  if (hint) {
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = hint;
    wrap.append(note);
  }
  return wrap;
}

function chooseFile(file, fromResult = false) {
  if (!file) return;
  if (input) URL.revokeObjectURL(input.url);
  input = { file, url: URL.createObjectURL(file), fromResult };
  const preview = $("input-preview");
  preview.src = input.url;
  preview.alt = file.name;
  preview.hidden = false;
  formChanged();
}

// The form's fields that are set and differ from what the API would do without them, in the
// order the API documents them: [name, value].
function fields() {
  const parameters = currentModel() ? currentModel().editgate.parameters : {};
  const values = [["prompt", $("prompt").value]];
  for (const id of FORM_IDS) {
    const value = $(id).value.trim();
    const fallback = parameters[id] && parameters[id].default;
    if (value && value !== String(fallback)) values.push([id, value]);
  }
  for (const field of $("model-params").querySelectorAll("[data-param]")) {
    if (field.value.trim()) values.push([field.dataset.param, field.value.trim()]);
  }
  return values;
}

function form() {
  const data = new FormData();
  if (input) data.append("image", input.file, input.file.name);
  for (const [name, value] of fields()) data.append(name, value);
  return data;
}

// Anything the form says changed: a dry run shown is no longer this form's.
function formChanged() { clearDryRun(); showCode(); }

async function preview() {
  if (busy) return;
  clearError();
  clearDryRun();
  chooseSeed();
  start("Checking what the edit would do…");
  try {
    const response = await fetch(`${API}/images/edits?dry_run=true`, { method: "POST", headers: { Authorization: `Bearer ${key()}` }, body: form() });
    const body = await response.json().catch(() => null);
    if (!response.ok) { finish(); setStatus(""); showError(response.status, body); return; }
    const cost = `Would cost $${body.cost.usd.toFixed(2)} for ${body.cost.images} image(s) of ${body.size}`;
    $("dry-run-cost").textContent = `${cost} (${body.model} at fal: ${body.endpoint_id}).`;
    $("dry-run-body").textContent = JSON.stringify(body.provider_requests, null, 2);
    $("dry-run").hidden = false;
    finish();
    setStatus(`${cost}: nothing was paid. The details are ${narrow() ? "below" : "beside"}.`);
    reveal($("status"));
  } catch (_) {
    finish();
    setStatus("");
    showError(0, null);
  }
}

function start(text) {
  busy = true;
  for (const button of document.querySelectorAll("#edit, #preview, .result button")) button.disabled = true;
  $("progress").removeAttribute("value");
  $("activity").hidden = false;
  $("empty").hidden = true;
  setStatus(text);
}

function finish() {
  busy = false;
  for (const button of document.querySelectorAll("#edit, #preview, .result button")) button.disabled = false;
  $("activity").hidden = true;
  $("empty").hidden = $("results").childElementCount > 0;
}

// The seed the edit is made with, in its field: shown with the result, and the same form again
// makes the same images. (Left to fal, the seed is not in the answer: the page could not show it.)
function chooseSeed() {
  const field = $("param-seed");
  if (!field) return "";
  if (!field.value.trim()) {
    field.value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
    showCode();
  }
  return field.value.trim();
}

function images(count) { return `${count} image${count === 1 ? "" : "s"}`; }

function edit() {
  if (busy) return;  // one edit at a time: a second click sends nothing
  clearError();
  clearDryRun();
  const seed = chooseSeed();
  const asked = images(Number($("n").value) || 1);
  start(`Editing ${asked}…`);
  const progress = $("progress");
  const started = performance.now();
  const request = new XMLHttpRequest();
  let timer = null;
  const waiting = () => setStatus(`Editing ${asked} at fal… ${((performance.now() - started) / 1000).toFixed(1)} s`);
  request.upload.onprogress = (event) => {
    if (!event.lengthComputable) return;
    progress.max = event.total;
    progress.value = event.loaded;
    setStatus(`Uploading the image… ${Math.round((100 * event.loaded) / event.total)} %`);
  };
  request.upload.onload = () => { progress.removeAttribute("value"); timer = setInterval(waiting, 100); waiting(); };
  request.onloadend = () => {
    clearInterval(timer);
    finish();
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON: shown as such */ }
    if (request.status !== 200) {
      setStatus("Not edited: see why below.");
      showError(request.status, body);
      reveal($("error"));
      return;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    setStatus(`Done in ${seconds} s: ${images(body.data.length)} ${narrow() ? "below" : "beside"}.`);
    showResults(body, seed, request.getResponseHeader("x-request-id"), request.getResponseHeader("server-timing"));
  };
  request.open("POST", `${API}/images/edits`);
  request.setRequestHeader("Authorization", `Bearer ${key()}`);
  request.send(form());
}

function timings(header) {
  if (!header) return "";
  return header.split(",").map((part) => {
    const [name, ...params] = part.trim().split(";");
    const duration = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    return duration ? `${name} ${Math.round(Number(duration.slice(4)))} ms` : name;
  }).join(", ");
}

function showFacts(rows) {
  const list = $("facts");
  list.replaceChildren();
  for (const [name, value] of rows) {
    if (!value) continue;
    const dt = document.createElement("dt"); dt.textContent = name;
    const dd = document.createElement("dd"); dd.textContent = value; dd.dataset.fact = name;
    list.append(dt, dd);
  }
}

function showResults(body, seed, requestId, serverTiming) {
  const meta = body.metadata || {};
  // What is true of the whole edit, once; each card has only its image and what to do with it.
  showFacts([
    ["size", body.size],
    ["format", body.output_format],
    ["cost", meta.cost ? `$${meta.cost.usd.toFixed(3)} for ${body.data.length} image(s)` : ""],
    // fal answers one seed for a call, not one an image: the set is made again from the same seed.
    ["seed", seed && body.data.length > 1 ? `${seed} (for this set of ${body.data.length})` : seed],
    ["request id", requestId || meta.request_id || ""],
    ["timings", timings(serverTiming)],
  ]);
  $("replayed").hidden = !meta.replayed;
  $("outcome").hidden = false;
  $("empty").hidden = true;
  const before = input ? input.url : "";
  $("results").replaceChildren(...body.data.map((item, index) => resultCard(body, item, index, before)));
  if (narrow()) $("outcome").scrollIntoView({ behavior: "smooth" });
  else reveal($("outcome").querySelector("h2"));
}

function resultCard(body, item, index, beforeUrl) {
  const src = item.url || `data:image/${body.output_format};base64,${item.b64_json}`;
  const card = document.createElement("div");
  card.className = "result";
  const compare = document.createElement("div");
  compare.className = "compare";
  const after = new Image();
  after.className = "after";
  after.alt = `result ${index + 1}`;
  after.src = src;
  const before = new Image();
  before.className = "before";
  before.alt = "input";
  before.src = beforeUrl;
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = 0; slider.max = 100; slider.value = 50;
  slider.setAttribute("aria-label", "before and after");
  const clip = () => { before.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`; };
  slider.oninput = clip;
  clip();
  const tagBefore = document.createElement("span");
  tagBefore.className = "tag before-tag"; tagBefore.textContent = "before";
  const tagAfter = document.createElement("span");
  tagAfter.className = "tag after-tag"; tagAfter.textContent = "after";
  compare.append(after, before, tagBefore, tagAfter);
  const actions = document.createElement("div");
  actions.className = "card-actions";
  const again = document.createElement("button");
  again.className = "edit-again";
  again.textContent = "Edit again";
  again.title = "Use this image as the next edit's input";
  again.onclick = () => editAgain(item, body.output_format, index);
  const variation = document.createElement("button");
  variation.className = "new-variation secondary";
  variation.textContent = "New variation";
  variation.title = "The same edit of the same input with a new seed";
  variation.onclick = newVariation;
  const download = document.createElement("a");
  download.href = src;
  download.download = `edit-${index + 1}.${body.output_format}`;
  download.target = "_blank";
  download.rel = "noopener";
  download.textContent = "Download";
  actions.append(again, variation, download);
  card.append(compare, slider, actions);
  return card;
}

// HiDream E1 edits in steps: the result becomes the input, and the next instruction changes it.
function editAgain(item, format, index) {
  if (busy) return;
  if (!item.b64_json) {
    showError(0, { error: { message: "Edit again needs the image itself: choose 'b64_json' under Results as, then edit once more." } });
    return;
  }
  const bytes = Uint8Array.from(atob(item.b64_json), (c) => c.charCodeAt(0));
  chooseFile(new File([bytes], `edit-${index + 1}.${format}`, { type: `image/${format}` }), true);
  $("prompt").value = "";
  $("prompt").placeholder = "now say what to change next";
  setStatus("The result is the input now: say what to change next, then Edit.");
  $("form").scrollIntoView({ behavior: "smooth" });
  $("prompt").focus({ preventScroll: true });
}

// A new seed makes a different request: the same one within minutes would replay its answer.
function newVariation() {
  if (busy) return;
  const seed = $("param-seed");
  if (seed) seed.value = "";  // Edit picks a new one
  edit();
}

function shellQuote(text) { return `'${text.replaceAll("'", "'\\''")}'`; }

function code(lang) {
  const url = `${location.origin}${API}`;
  const name = input ? input.file.name : "input.png";
  const type = input ? input.file.type : "image/png";
  const values = fields().filter(([, value]) => value !== "");
  // A result edited again is a file only once the user saves it: say so where the call names it.
  const note = (comment) => (input && input.fromResult
    ? [`${comment} ${name}: the result you edit again, as its Download link saves it (save it here first).`] : []);
  if (lang === "curl") {
    const parts = [`curl -sS ${shellQuote(`${url}/images/edits`)}`, `-H "Authorization: Bearer $EDITGATE_API_KEY"`, `-F image=@${shellQuote(name)}`];
    for (const [field, value] of values) parts.push(`-F ${shellQuote(`${field}=${value}`)}`);
    return [...note("#"), parts.join(" \\\n  ")].join("\n");
  }
  const typed = (field, value) => (/^-?\d+(\.\d+)?$/.test(value) && field !== "size" && field !== "resolution" ? value : JSON.stringify(value));
  if (lang === "python") {
    const py = (field, value) => (value === "true" ? "True" : value === "false" ? "False" : typed(field, value));
    const lines = [`    image=open(${JSON.stringify(name)}, "rb"),`];
    const extra = [];
    for (const [field, value] of values) {
      if (PYTHON_SDK_ARGUMENTS.has(field)) lines.push(`    ${field}=${py(field, value)},`);
      else extra.push(`${JSON.stringify(field)}: ${py(field, value)}`);
    }
    if (extra.length) lines.push(`    extra_body={${extra.join(", ")}},`);
    return [
      ...note("#"), "import os", "from openai import OpenAI", "",
      `client = OpenAI(base_url=${JSON.stringify(url)}, api_key=os.environ["EDITGATE_API_KEY"])`,
      "result = client.images.edit(", ...lines, ")", "print(result.data[0].url or len(result.data[0].b64_json))",
    ].join("\n");
  }
  const appends = values.map(([field, value]) => `form.append(${JSON.stringify(field)}, ${JSON.stringify(value)});`);
  return [
    ...note("//"),
    "// Node 20+: save as edit.mjs beside the image, run `node edit.mjs` with the key in EDITGATE_API_KEY.",
    "// (In a browser, the image is the File of an <input type=file>.)",
    'import { readFile } from "node:fs/promises";',
    "",
    `const image = new Blob([await readFile(${JSON.stringify(name)})], { type: ${JSON.stringify(type)} });`,
    "const form = new FormData();",
    `form.append("image", image, ${JSON.stringify(name)});`, ...appends,
    `const response = await fetch(${JSON.stringify(`${url}/images/edits`)}, {`,
    '  method: "POST",',
    "  headers: { Authorization: `Bearer ${process.env.EDITGATE_API_KEY}` },",
    "  body: form,",
    "});",
    "const result = await response.json();",
    'console.log(response.headers.get("x-request-id"), result);',
  ].join("\n");
}

function showCode() {
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-selected", String(tab.dataset.lang === codeLang));
  $("code-text").textContent = code(codeLang);
}

$("use-key").onclick = () => { sessionStorage.setItem(KEY_STORE, $("key").value.trim()); loadModels(); };
$("key").onkeydown = (event) => { if (event.key === "Enter") $("use-key").click(); };
$("model").onchange = () => { showModel(); formChanged(); };
$("form").addEventListener("input", (event) => { if (event.target.id !== "key") formChanged(); });
$("drop").onclick = (event) => { if (event.target !== $("file")) $("file").click(); };
$("drop").onkeydown = (event) => { if (event.key === "Enter" || event.key === " ") $("file").click(); };
$("file").onchange = () => chooseFile($("file").files[0]);
$("drop").ondragover = (event) => { event.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (event) => { event.preventDefault(); $("drop").classList.remove("over"); chooseFile(event.dataTransfer.files[0]); };
$("preview").onclick = preview;
$("edit").onclick = edit;
for (const tab of document.querySelectorAll(".tab")) tab.onclick = () => { codeLang = tab.dataset.lang; showCode(); };
showCode();
if (key()) { $("key").value = key(); loadModels(); }
