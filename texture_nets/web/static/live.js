// The Live view: the camera stylized frame by frame, on the server (a WebSocket to /api/live) or in
// this browser (onnxruntime-web, WebAssembly, served by this app). The noise is one fixed field per
// frame size in both ways, so a still camera gives a still picture: no flicker from fresh noise.
"use strict";
const MAX_IN_FLIGHT = 2;  // frames sent and not yet back: one being stylized on the server, one on its way
const ORT_FOLDER = "/static/vendor/onnxruntime-web/";
const RECORD_SECONDS = 30;  // a recording stops by itself after this
const live = { running: false, way: "server", stream: null, socket: null, session: null, sessionModel: null,
               nextId: 0, sent: new Map(), encoding: 0, times: [], latencies: [], frames: 0, noise: null,
               recorder: null, grab: document.createElement("canvas"), error: "" };

function liveStatus(text, isError = false) { setStatus("live_status", text, isError); }

async function startLive() {
  stopLive();
  if (!state.model) { liveStatus("choose a style above first", true); return; }
  const [width, height] = $("live_size").value.split("x").map(Number);
  Object.assign(live, { running: true, way: $("live_way").value, frames: 0, times: [], latencies: [], error: "" });
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ audio: false, video: { width: { ideal: width }, height: { ideal: height } } });
  } catch (e) {
    live.running = false;
    liveStatus(`no camera: ${e.message}`, true);
    return;
  }
  const camera = $("live_camera");
  camera.srcObject = live.stream;
  await camera.play();
  live.size = fitted(camera.videoWidth, camera.videoHeight, Math.max(width, height));
  $("live_start").hidden = true; $("live_stop").hidden = false;
  $("live_snapshot").disabled = false; $("live_record").disabled = false;
  try {
    if (live.way === "browser") await startBrowser(); else startServer();
  } catch (e) {
    stopLive();
    liveStatus(e.message, true);
  }
}

function stopLive() {
  live.running = false;
  if (live.socket) { live.socket.close(); live.socket = null; }
  if (live.stream) { live.stream.getTracks().forEach((track) => track.stop()); live.stream = null; }
  if (live.recorder && live.recorder.state === "recording") live.recorder.stop();
  live.sent.clear();
  $("live_start").hidden = false; $("live_stop").hidden = true;
  $("live_snapshot").disabled = true; $("live_record").disabled = true;
}

// The frame size: the camera's, its longer side at most `longest`.
function fitted(width, height, longest) {
  const scale = Math.min(1, longest / Math.max(width, height));
  return [Math.round(width * scale), Math.round(height * scale)];
}

// The camera's current frame on a canvas of the frame size.
function grab() {
  const [width, height] = live.size;
  const canvas = live.grab;
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  canvas.getContext("2d", { willReadFrequently: true }).drawImage($("live_camera"), 0, 0, width, height);
  return canvas;
}

function recordFrame(latency) {
  const now = performance.now();
  live.frames++; live.times.push(now); live.latencies.push(latency);
  while (now - live.times[0] > 2000) live.times.shift();  // frames/s over the last two seconds
  if (live.latencies.length > 30) live.latencies.shift();
  const fps = live.times.length > 1 ? (live.times.length - 1) / ((now - live.times[0]) / 1000) : 0;
  const sorted = [...live.latencies].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1];
  const stats = $("live_stats");
  Object.assign(stats.dataset, { fps: fps.toFixed(1), latency: median.toFixed(0), frames: String(live.frames), way: live.way });
  stats.textContent = `stylized ${live.way === "server" ? "on the server" : "in this browser"}: ` +
                      `${fps.toFixed(1)} frames/s, ${median.toFixed(0)} ms camera to screen`;
}

function liveSettings() {
  return { model: state.model, style: $("blend").hidden ? "" : blendSpec(), noise_factor: $("noise").value,
           preserve_colors: $("preserve_colors").checked, photorealistic: $("photorealistic").checked };
}

// --- on the server --------------------------------------------------------------------------------------

function startServer() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = live.socket = new WebSocket(`${scheme}://${location.host}/api/live?${new URLSearchParams(liveSettings())}`);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => { if (live.socket === socket) serverMessage(event.data); };
  socket.onclose = (event) => {
    if (live.socket !== socket) return;
    stopLive();
    liveStatus(live.error || event.reason || "the live session has closed", true);
  };
}

async function serverMessage(data) {
  if (typeof data === "string") {
    const message = JSON.parse(data);
    if (message.ready) { liveStatus("live: stylized on the server"); pump(); }
    if (message.error) {
      liveStatus(message.error, true);
      if (message.frame_error) { live.sent.delete(live.sent.keys().next().value); pump(); } else live.error = message.error;
    }
    return;
  }
  const id = new DataView(data).getUint32(0, true);
  const sentAt = live.sent.get(id);
  for (const key of live.sent.keys()) if (key <= id) live.sent.delete(key);  // older frames: dropped by the server
  pump();
  const bitmap = await createImageBitmap(new Blob([data.slice(4)], { type: "image/jpeg" }));
  const out = $("live_output");
  if (out.width !== bitmap.width || out.height !== bitmap.height) Object.assign(out, { width: bitmap.width, height: bitmap.height });
  out.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  if (sentAt !== undefined) recordFrame(performance.now() - sentAt);
}

// Send camera frames while fewer than MAX_IN_FLIGHT are on their way or being stylized.
async function pump() {
  while (live.running && live.socket && live.socket.readyState === WebSocket.OPEN &&
         live.sent.size + live.encoding < MAX_IN_FLIGHT) {
    live.encoding++;
    const id = live.nextId++ >>> 0, at = performance.now();
    const blob = await new Promise((resolve) => grab().toBlob(resolve, "image/jpeg", 0.85));
    live.encoding--;
    if (!live.socket || live.socket.readyState !== WebSocket.OPEN) return;
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, id, true);
    live.sent.set(id, at);
    live.socket.send(new Blob([header, blob]));
  }
}

// --- in this browser ------------------------------------------------------------------------------------

async function loadOrt() {
  if (!window.ort) {
    await new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement("script"), { src: `${ORT_FOLDER}ort.wasm.min.js` });
      script.onload = resolve;
      script.onerror = () => reject(new Error("onnxruntime-web is not installed on this server: run it on the server"));
      document.head.append(script);
    });
    ort.env.wasm.wasmPaths = ORT_FOLDER;
    // several threads need a cross-origin isolated page (the server sends the headers)
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  }
  return window.ort;
}

async function startBrowser() {
  const info = state.models[state.model];
  if (!info.onnx) throw new Error(`${state.model} cannot run in the browser: run it on the server`);
  const ort = await loadOrt();
  if (live.sessionModel !== state.model) {
    liveStatus(`loading ${state.model} into this browser…`);
    live.session = await ort.InferenceSession.create(info.onnx, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    live.sessionModel = state.model;
    live.noise = null;
  }
  liveStatus(`live: stylized in this browser (WebAssembly, ${ort.env.wasm.numThreads} threads)` +
             ($("preserve_colors").checked || $("photorealistic").checked ? "; colour keeping and photorealistic run on the server only" : ""));
  const session = live.session;
  while (live.running && live.way === "browser" && live.session === session) {
    const at = performance.now();
    const canvas = grab();
    const results = await session.run(browserFeeds(ort, canvas, info));
    if (!live.running) break;
    drawPicture(results.picture, canvas.width, canvas.height);
    recordFrame(performance.now() - at);
    await new Promise((resolve) => setTimeout(resolve, 0));  // let the page draw and take input
  }
}

// The network's inputs for a frame: the photo padded (reflected, as the server pads) to a multiple
// of info.multiple, the noise factor, the style weights, and the fixed noise of this size.
function browserFeeds(ort, canvas, info) {
  const w = canvas.width, h = canvas.height, m = info.multiple;
  const H = Math.max(Math.ceil(h / m) * m, 2 * m), W = Math.max(Math.ceil(w / m) * m, 2 * m);
  const reflect = H - h < h && W - w < w;
  const source = (i, n) => (i < n ? i : reflect ? 2 * (n - 1) - i : n - 1);
  const pixels = canvas.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, w, h).data;
  const plane = H * W, photo = new Float32Array(3 * plane);
  for (let y = 0; y < H; y++) {
    const row = source(y, h) * w;
    for (let x = 0; x < W; x++) {
      const k = (row + source(x, w)) * 4, o = y * W + x;
      photo[o] = pixels[k] / 255; photo[plane + o] = pixels[k + 1] / 255; photo[2 * plane + o] = pixels[k + 2] / 255;
    }
  }
  const feeds = { photo: new ort.Tensor("float32", photo, [1, 3, H, W]),
                  noise_factor: new ort.Tensor("float32", new Float32Array([Number($("noise").value)]), []) };
  if (info.styles.length > 1) feeds.style = new ort.Tensor("float32", styleWeights(info.styles), [info.styles.length]);
  if (!live.noise || live.noise.key !== `${H}x${W}`) live.noise = { key: `${H}x${W}`, tensors: fixedNoise(ort, info.noise, H, W) };
  live.noise.tensors.forEach((tensor, s) => { feeds[`noise${s}`] = tensor; });
  const wanted = new Set(live.session.inputNames);  // the export leaves out inputs a network does not use
  return Object.fromEntries(Object.entries(feeds).filter(([name]) => wanted.has(name)));
}

// The sliders' blend as one weight per style, summing to 1 (the first style alone if all are 0).
function styleWeights(styles) {
  const values = styles.map((style) => Number(($("blend").querySelector(`input[data-style="${style}"]`) || {}).value || 0));
  const total = values.reduce((a, b) => a + b, 0);
  return Float32Array.from(total > 0 ? values.map((v) => v / total) : values.map((_, i) => (i === 0 ? 1 : 0)));
}

// Unit Gaussian noise per scale ([channels, divisor] each), from a fixed seed: the same every frame.
function fixedNoise(ort, shapes, H, W) {
  let seed = 0x9e3779b9;
  const uniform = () => {  // mulberry32
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return shapes.map(([channels, divisor]) => {
    const dims = [1, channels, H / divisor, W / divisor];
    const data = new Float32Array(channels * dims[2] * dims[3]);
    for (let i = 0; i < data.length; i++) data[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    return new ort.Tensor("float32", data, dims);
  });
}

// The network's padded N,3,H,W picture in 0..1, cropped to width × height, on the output canvas.
function drawPicture(tensor, width, height) {
  const [, , H, W] = tensor.dims, data = tensor.data, plane = H * W;
  const image = new ImageData(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = y * W + x, k = (y * width + x) * 4;
      image.data[k] = data[o] * 255 + 0.5; image.data[k + 1] = data[plane + o] * 255 + 0.5;
      image.data[k + 2] = data[2 * plane + o] * 255 + 0.5; image.data[k + 3] = 255;
    }
  }
  const out = $("live_output");
  if (out.width !== width || out.height !== height) Object.assign(out, { width, height });
  out.getContext("2d").putImageData(image, 0, 0);
}

// --- snapshot and recording ----------------------------------------------------------------------------

function offer(blob, name) {
  const link = $("live_download");
  if (link.href) URL.revokeObjectURL(link.href);
  Object.assign(link, { href: URL.createObjectURL(blob), download: name, textContent: `Download ${name}` });
  link.hidden = false;
  link.click();
}

$("live_snapshot").addEventListener("click", () => $("live_output").toBlob((blob) => offer(blob, `${state.model}_live.png`), "image/png"));

$("live_record").addEventListener("click", () => {
  if (live.recorder && live.recorder.state === "recording") { live.recorder.stop(); return; }
  const chunks = [];
  const recorder = live.recorder = new MediaRecorder($("live_output").captureStream(30), { mimeType: "video/webm" });
  recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
  recorder.onstop = () => {
    $("live_record").textContent = "Record";
    offer(new Blob(chunks, { type: "video/webm" }), `${state.model}_live.webm`);
  };
  recorder.start(1000);
  $("live_record").textContent = "Stop recording";
  setTimeout(() => { if (recorder.state === "recording") recorder.stop(); }, RECORD_SECONDS * 1000);
});

// --- settings -------------------------------------------------------------------------------------------

// The style, blend, noise or colour settings changed above: the running session follows them.
function liveSettingsChanged() {
  if (!live.running) return;
  if (live.way === "server" && live.socket && live.socket.readyState === WebSocket.OPEN) {
    live.socket.send(JSON.stringify(liveSettings()));
  } else if (live.way === "browser" && live.sessionModel !== state.model) {
    startBrowser().catch((e) => { stopLive(); liveStatus(e.message, true); });
  }
}

$("live_start").addEventListener("click", startLive);
$("live_stop").addEventListener("click", () => { stopLive(); liveStatus("stopped"); });
for (const id of ["noise", "blend"]) $(id).addEventListener("input", liveSettingsChanged);
for (const id of ["preserve_colors", "photorealistic"]) $(id).addEventListener("change", liveSettingsChanged);
$("gallery").addEventListener("click", liveSettingsChanged);
window.addEventListener("pagehide", stopLive);
fetch("/api/live").then((r) => r.json()).then((info) => {
  const option = $("live_way").querySelector('option[value="browser"]');
  option.disabled = !info.browser_engine;
  if (!info.browser_engine) option.textContent += " (not installed on this server)";
});
