// The texture_nets page: a gallery of styles, a photo, a stylized result; a training form and job.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { model: null, photo: null, request: 0, abort: null, resultUrl: null, originalUrl: null, polling: null,
                sampleVersion: -1, limits: {}, models: {} };
const VIDEO_NAME = /\.(mp4|m4v|mov|mkv|webm|avi|mpe?g|ts|3gp|flv)$/i;

function isVideo(file) {
  return file.type.startsWith("video/") || VIDEO_NAME.test(file.name || "");
}

// The clip format this browser plays: VP9 WebM where it can, else H.264 MP4.
function clipFormat() {
  return document.createElement("video").canPlayType('video/webm; codecs="vp9"') ? "webm" : "mp4";
}

// Show a picture in the <img> or a clip in the <video> of a figure, hiding the other.
function show(kind, url) {
  const img = $(kind), video = $(`${kind}_video`);
  const clip = url.isVideo;
  img.hidden = clip; video.hidden = !clip;
  if (clip) { video.src = url.href; img.removeAttribute("src"); } else { img.src = url.href; video.removeAttribute("src"); }
}

async function errorText(response) {
  try { return (await response.json()).detail; } catch (e) { return `${response.status} ${response.statusText}`; }
}

function setStatus(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", isError);
}

async function loadModels() {
  const response = await fetch("/api/models");
  const { models, limits } = await response.json();
  state.limits = limits || {};
  const gallery = $("gallery");
  gallery.replaceChildren();
  for (const model of models) {
    state.models[model.name] = model;
    const card = document.createElement("button");
    card.type = "button";
    card.className = "card";
    card.dataset.model = model.name;
    card.title = `${model.style}, ${model.steps} steps`;
    const img = document.createElement("img");
    img.src = model.thumbnail;
    img.alt = model.name;
    card.append(img, model.name);
    card.addEventListener("click", () => selectModel(model.name));
    gallery.append(card);
  }
  if (!state.model && models.length) selectModel(models[0].name, false);
  else if (state.model) selectModel(state.model, false);
}

function selectModel(name, run = true) {
  state.model = name;
  for (const card of document.querySelectorAll(".card")) card.classList.toggle("selected", card.dataset.model === name);
  showBlend((state.models[name] || {}).styles || []);
  if (run) stylize();
}

// A network of several styles: one slider per style, the first at 1; the blend is their weights.
function showBlend(styles) {
  const box = $("blend");
  box.hidden = styles.length < 2;
  box.querySelectorAll("label").forEach((label) => label.remove());
  styles.forEach((style, i) => {
    const label = document.createElement("label");
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", min: "0", max: "1", step: "0.05", value: i === 0 ? "1" : "0" });
    slider.dataset.style = style;
    slider.addEventListener("input", () => { clearTimeout(noiseTimer); noiseTimer = setTimeout(stylize, 150); });
    label.append(style, " ", slider);
    box.append(label);
  });
}

// The blend the sliders ask for, as the server reads it ("mosaic=0.7,candy=0.3"); "" for one style.
function blendSpec() {
  return Array.from($("blend").querySelectorAll("input[data-style]"))
    .filter((slider) => Number(slider.value) > 0).map((slider) => `${slider.dataset.style}=${slider.value}`).join(",");
}

function setPhoto(file) {
  if (!file) return;
  state.photo = file;
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(file);
  show("original", { href: state.originalUrl, isVideo: isVideo(file) });
  stylize();
}

async function stylize() {
  if (!state.photo || !state.model) return;
  const id = ++state.request;  // a newer request makes older answers stale
  const clip = isVideo(state.photo);
  const form = new FormData();
  form.append("file", state.photo);
  form.append("model", state.model);
  form.append("noise_factor", $("noise").value);
  let size = $("size").value;
  if (clip && size && state.limits.max_video_size) size = Math.min(Number(size), state.limits.max_video_size);
  if (size) form.append("size", size);  // a clip without a size: the server's largest
  form.append("preserve_colors", $("preserve_colors").checked);
  form.append("photorealistic", $("photorealistic").checked);
  if (!$("blend").hidden) form.append("style", blendSpec());
  const format = clipFormat();
  if (clip) { form.append("format", format); form.append("progress", "true"); }
  setStatus("stylize_status", clip ? `stylizing the clip with ${state.model}…` : `stylizing with ${state.model}…`);
  const started = performance.now();
  // a newer request replaces this one: the server drops a waiting request whose client has gone
  if (state.abort) state.abort.abort();
  const abort = state.abort = new AbortController();
  $("clip_box").hidden = !clip;
  let result;
  try {
    const response = await fetch(clip ? "/api/stylize_video" : "/api/stylize", { method: "POST", body: form, signal: abort.signal });
    if (!response.ok) { if (id === state.request) setStatus("stylize_status", await errorText(response), true); return; }
    result = clip ? await clipResult(response, id) : { blob: await response.blob(), headers: response.headers };
  } catch (e) {
    const text = { AbortError: "cancelled", ClipError: e.message }[e.name] || `the server did not answer (${e.message})`;
    if (id === state.request) setStatus("stylize_status", text, e.name !== "AbortError");
    return;
  } finally {
    if (id === state.request) $("clip_cancel").hidden = true;
  }
  if (id !== state.request || !result) return;
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(result.blob);
  show("result", { href: state.resultUrl, isVideo: clip });
  const shown = clip ? $("result_video") : $("result");
  shown.dataset.model = state.model;
  shown.dataset.noise = $("noise").value;
  $("result_caption").textContent = `${state.model}, noise ${$("noise").value}`;
  const download = $("download");
  download.href = state.resultUrl;
  download.download = `${(state.photo.name || "photo").replace(/\.[^.]*$/, "")}_${state.model}.${clip ? format : "png"}`;
  download.hidden = false;
  const server = result.headers.get("X-Stylize-Seconds");
  const frames = result.headers.get("X-Video-Frames");
  setStatus("stylize_status", `done in ${((performance.now() - started) / 1000).toFixed(2)} s` +
            (server ? ` (network ${Number(server).toFixed(2)} s${frames ? `, ${frames} frames` : ""})` : ""));
}

// A clip's stylization streams JSON lines: frames done of the total and the time left, then the clip.
async function clipResult(response, id) {
  $("clip_cancel").hidden = false;
  $("clip_progress").value = 0;
  let result = null;
  await readLines(response, (line) => {
    if (id !== state.request) return;
    if (line.error) throw Object.assign(new Error(line.error), { name: "ClipError" });
    if (line.total) {
      $("clip_progress").max = line.total; $("clip_progress").value = line.frames;
      const left = line.seconds_left == null ? "" : `, about ${Math.ceil(line.seconds_left)} s left`;
      setStatus("stylize_status", `frame ${line.frames} of ${line.total}${left}`);
      $("clip_progress").dataset.frames = line.frames;
    }
    if (line.done) {
      const bytes = Uint8Array.from(atob(line.clip.split(",", 2)[1]), (c) => c.charCodeAt(0));
      result = { blob: new Blob([bytes], { type: line.clip.slice(5, line.clip.indexOf(";")) }),
                 headers: new Map(Object.entries(line.headers)) };
    }
  });
  return result;
}

// Read a response of JSON lines, calling onLine with each.
async function readLines(response, onLine) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 1);
      onLine(line);
    }
  }
}

$("clip_cancel").addEventListener("click", () => { if (state.abort) state.abort.abort(); });

let noiseTimer = null;
$("noise").addEventListener("input", () => {
  $("noise_value").textContent = $("noise").value;
  clearTimeout(noiseTimer);
  noiseTimer = setTimeout(stylize, 150);
});
$("size").addEventListener("change", stylize);
$("preserve_colors").addEventListener("change", stylize);
$("photorealistic").addEventListener("change", stylize);
$("photo").addEventListener("change", (e) => setPhoto(e.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => setPhoto(e.dataTransfer.files[0]));

// The optimisation streams JSON lines: progress, previews every tenth of the run, the picture.
$("optimize").addEventListener("click", async () => {
  if (!state.photo) { setStatus("opt_status", "choose a photo first", true); return; }
  if (isVideo(state.photo)) { setStatus("opt_status", "the exact method takes a photo, not a clip", true); return; }
  const styles = $("opt_style").files;
  if (!styles.length) { setStatus("opt_status", "choose one or more style images", true); return; }
  const form = new FormData();
  form.append("file", state.photo);
  for (const file of styles) form.append("style", file);
  form.append("steps", $("opt_steps").value);
  form.append("size", $("opt_size").value);
  form.append("preserve_colors", $("preserve_colors").checked);
  $("optimize").disabled = true;
  setStatus("opt_status", "starting…");
  try {
    const response = await fetch("/api/optimize", { method: "POST", body: form });
    if (!response.ok) { setStatus("opt_status", await errorText(response), true); return; }
    await readLines(response, (line) => {
      if (line.error) setStatus("opt_status", line.error, true);
      if (line.step) {
        $("opt_progress").max = line.total; $("opt_progress").value = line.step;
        setStatus("opt_status", `step ${line.step} / ${line.total}: style ${line.style.toPrecision(3)}, content ${line.content.toPrecision(3)}`);
      }
      if (line.preview || line.image) {
        show("result", { href: line.preview || line.image, isVideo: false });
        $("result").dataset.model = "optimisation";
        $("result_caption").textContent = line.image ? "optimisation" : `optimisation, step ${line.step}`;
      }
      if (line.image) { $("download").href = line.image; $("download").download = "optimised.png"; $("download").hidden = false; }
    });
  } finally {
    $("optimize").disabled = false;
  }
});

// Training
let dirTimer = null;
$("data_dir").addEventListener("input", () => {
  clearTimeout(dirTimer);
  dirTimer = setTimeout(async () => {
    const path = $("data_dir").value;
    if (!path) return;
    const response = await fetch(`/api/data_dir?path=${encodeURIComponent(path)}`);
    const hint = $("data_dir_status");
    if (response.ok) { const d = await response.json(); hint.textContent = `${d.images} images`; hint.classList.remove("error"); }
    else { hint.textContent = await errorText(response); hint.classList.add("error"); }
  }, 300);
});

$("train_form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const response = await fetch("/api/train", { method: "POST", body: new FormData($("train_form")) });
  if (!response.ok) { setStatus("train_status", await errorText(response), true); return; }
  setStatus("train_status", "");
  showJob(await response.json());
  poll();
});

$("cancel").addEventListener("click", async () => { showJob(await (await fetch("/api/train/cancel", { method: "POST" })).json()); });

function showJob(job) {
  if (job.state === "idle") return;
  $("job").hidden = false;
  $("job_name").textContent = job.name;
  $("job_state").textContent = job.state + (job.error ? `: ${job.error}` : "");
  $("job_state").dataset.state = job.state;
  $("job_progress").max = job.total || 1;
  $("job_progress").value = job.step;
  $("job_step").textContent = `step ${job.step} / ${job.total}, ${job.elapsed_s} s`;
  const losses = Object.entries(job.losses).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join(", ");
  const val = Object.entries(job.val_losses).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join(", ");
  $("job_losses").textContent = (losses ? `training: ${losses}` : "") + (val ? ` — validation: ${val}` : "");
  $("cancel").hidden = !["starting", "running"].includes(job.state);
  if (job.viz_url) { $("viz_link").href = job.viz_url; $("viz_link").hidden = false; }
  if (job.sample_version > 0 && job.sample_version !== state.sampleVersion) {
    state.sampleVersion = job.sample_version;
    $("job_sample").src = `/api/train/sample.png?v=${job.sample_version}`;
    $("job_sample").hidden = false;
  }
}

function poll() {
  clearInterval(state.polling);
  state.polling = setInterval(async () => {
    const job = await (await fetch("/api/train")).json();
    showJob(job);
    if (!["starting", "running"].includes(job.state)) {
      clearInterval(state.polling);
      if (job.state === "done") loadModels();
    }
  }, 1000);
}

loadModels();
fetch("/api/train").then((r) => r.json()).then((job) => { showJob(job); if (["starting", "running"].includes(job.state)) poll(); });
