// lsd serve's page. The camera (or a synthetic test pattern) is drawn into the "camera"
// canvas, whose captureStream() is sent over WebRTC; the server's generated stream comes
// back on the same connection and plays beside it. A data channel carries prompt changes
// to the server and stats back (once a second).
//
// Latency: each sent frame gets a counter stamped in its bottom-left corner (12 black or
// white cells of width/16: a white marker, 10 bits, a black marker). The server copies
// that strip from input to output, so when an output frame is shown the page reads the
// counter back and knows how long ago that input frame was drawn: capture-to-display.
"use strict";

const TAG_CELLS = 12, TAG_BITS = 10, TAG_DIV = 16;  // as in lsd/serve/session.py
const MAX_WIDTH = 320;  // sent frames are at most this wide: the model works at ~128 px
const SYNTHETIC = [256, 192];
const LATENCY_WINDOW = 300;  // output frames the p50/p95 are taken over
const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const keepFrames = params.has("debug");  // keep recent frames so tests can compare them

const $ = (id) => document.getElementById(id);
const camera = $("camera"), cameraCtx = camera.getContext("2d", {willReadFrequently: true});
const output = $("output");
const reader = document.createElement("canvas");
const readerCtx = reader.getContext("2d", {willReadFrequently: true});

// everything the tests (and a curious user, in the console) may read
const lsd = window.lsd = {
  running: false, error: "", prompt: "", stats: null,
  framesSent: 0, framesOut: 0, tagged: 0, latencies: [], latency: {p50: null, p95: null, n: 0},
  sentAt: new Map(), sentFrames: new Map(), lastOutput: null,
};
let pc = null, channel = null, media = null, timer = null;

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
  if (isError) lsd.error = text;
}

// -- suggestions ---------------------------------------------------------------------------

async function loadStyles() {
  const res = await fetch(withToken("styles"));
  if (!res.ok) return status((await errorOf(res)), true);
  const info = await res.json();
  for (const style of info.styles) {
    for (const prompt of style.prompts) {
      const option = document.createElement("option");
      option.value = prompt;
      option.label = style.name;
      $("prompts").appendChild(option);
    }
  }
  $("prompt").maxLength = info.max_prompt;
  if (!$("prompt").value) $("prompt").value = info.default_prompt;
}

function withToken(path) {
  return token ? `${path}?token=${encodeURIComponent(token)}` : path;
}

async function errorOf(res) {
  try { return (await res.json()).error || `HTTP ${res.status}`; }
  catch { return `HTTP ${res.status}`; }
}

// -- what is sent: camera or pattern, stamped, into the canvas ----------------------------

function stamp(ctx, w, h) {
  const n = lsd.framesSent++ % (1 << TAG_BITS);
  const cell = w / TAG_DIV, top = h - Math.ceil(cell);
  for (let i = 0; i < TAG_CELLS; i++) {
    const bit = i === 0 ? 1 : i === TAG_CELLS - 1 ? 0 : (n >> (TAG_BITS - i)) & 1;
    ctx.fillStyle = bit ? "#fff" : "#000";
    ctx.fillRect(Math.round(i * cell), top, Math.round((i + 1) * cell) - Math.round(i * cell), h - top);
  }
  lsd.sentAt.set(n, performance.now());
  if (keepFrames) {
    lsd.sentFrames.set(n, ctx.getImageData(0, 0, w, h));
    lsd.sentFrames.delete((n + (1 << TAG_BITS) - 64) % (1 << TAG_BITS));  // keep 64
  }
}

function drawPattern(ctx, w, h, t) {
  // a moving test pattern: sliding colour bars, a bouncing ball, a sweeping line
  const bars = ["#e33", "#e93", "#ee3", "#3c3", "#3ce", "#36e", "#a3e", "#eee"];
  const shift = (t * 40) % w;
  bars.forEach((c, i) => {
    ctx.fillStyle = c;
    const x = (i * w / bars.length + shift) % w;
    ctx.fillRect(x, 0, w / bars.length + 1, h);
    ctx.fillRect(x - w, 0, w / bars.length + 1, h);
  });
  ctx.fillStyle = "#111";
  ctx.beginPath();
  ctx.arc(w * (0.5 + 0.35 * Math.sin(t * 1.3)), h * (0.5 + 0.3 * Math.cos(t * 2.1)), h / 6, 0, 7);
  ctx.fill();
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 3;
  ctx.beginPath();
  ctx.moveTo(w / 2, h / 2);
  ctx.lineTo(w / 2 + w * Math.cos(t), h / 2 + w * Math.sin(t));
  ctx.stroke();
}

async function startSource(kind) {
  const capture = $("capture");
  if (kind === "synthetic") {
    [camera.width, camera.height] = SYNTHETIC;
    const t0 = performance.now();
    timer = setInterval(() => {
      drawPattern(cameraCtx, camera.width, camera.height, (performance.now() - t0) / 1000);
      stamp(cameraCtx, camera.width, camera.height);
    }, 1000 / 30);
  } else {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error("no camera access here (it needs HTTPS or localhost): try the synthetic camera");
    }
    media = await navigator.mediaDevices.getUserMedia(
      {video: {width: {ideal: 320}, height: {ideal: 240}}, audio: false});
    capture.srcObject = media;
    await capture.play();
    const scale = Math.min(1, MAX_WIDTH / capture.videoWidth);
    camera.width = Math.round(capture.videoWidth * scale / 2) * 2;
    camera.height = Math.round(capture.videoHeight * scale / 2) * 2;
    const draw = () => {
      cameraCtx.drawImage(capture, 0, 0, camera.width, camera.height);
      stamp(cameraCtx, camera.width, camera.height);
    };
    if ("requestVideoFrameCallback" in capture) {  // once per camera frame
      const onFrame = () => { if (media) { draw(); capture.requestVideoFrameCallback(onFrame); } };
      capture.requestVideoFrameCallback(onFrame);
    } else {
      timer = setInterval(draw, 1000 / 30);
    }
  }
  return camera.captureStream();  // a new frame whenever the canvas is drawn
}

// -- what comes back: read the counter, time it --------------------------------------------

function readTag(w, h) {
  const cell = w / TAG_DIV, y = Math.floor(h - cell / 2);
  const row = readerCtx.getImageData(0, y, w, 1).data;
  const bits = [];
  for (let i = 0; i < TAG_CELLS; i++) {
    const x = Math.floor((i + 0.5) * cell) * 4;
    bits.push(row[x] + row[x + 1] + row[x + 2] > 3 * 128 ? 1 : 0);
  }
  if (bits[0] !== 1 || bits[TAG_CELLS - 1] !== 0) return -1;  // no counter there
  return bits.slice(1, -1).reduce((n, b) => n * 2 + b, 0);
}

function percentile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}

function onOutputFrame(now, meta) {
  if (!lsd.running) return;
  lsd.framesOut++;
  const w = meta.width || output.videoWidth, h = meta.height || output.videoHeight;
  if (w && h) {
    if (reader.width !== w || reader.height !== h) [reader.width, reader.height] = [w, h];
    readerCtx.drawImage(output, 0, 0, w, h);
    const n = readTag(w, h);
    if (n >= 0 && lsd.sentAt.has(n)) {
      const shown = meta.expectedDisplayTime || now;
      lsd.latencies.push(shown - lsd.sentAt.get(n));
      lsd.sentAt.delete(n);  // a counter is timed once
      if (lsd.latencies.length > LATENCY_WINDOW) lsd.latencies.shift();
      lsd.tagged++;
      if (keepFrames) lsd.lastOutput = {tag: n, image: readerCtx.getImageData(0, 0, w, h)};
    }
  }
  output.requestVideoFrameCallback(onOutputFrame);
}

function showStats() {
  const sorted = [...lsd.latencies].sort((a, b) => a - b);
  lsd.latency = {p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), n: sorted.length};
  const ms = (x) => x == null ? "–" : `${x.toFixed(0)} ms`;
  $("lat50").textContent = ms(lsd.latency.p50);
  $("lat95").textContent = ms(lsd.latency.p95);
  const s = lsd.stats;
  if (!s) return;
  $("fps").textContent = s.fps.toFixed(1);
  $("ms").textContent = s.ms_per_frame == null ? "–" : s.ms_per_frame.toFixed(1);
  $("dropped").textContent = s.dropped;
  $("frames").textContent = s.frames;
  $("understood").textContent = s.understood_as ?? "–";
}

// for tests: the newest output frame whose input is still kept, both as PNG data URLs
lsd.pair = function () {
  const out = lsd.lastOutput, sent = out && lsd.sentFrames.get(out.tag);
  if (!sent) return null;
  const png = (image) => {
    const c = document.createElement("canvas");
    [c.width, c.height] = [image.width, image.height];
    c.getContext("2d").putImageData(image, 0, 0);
    return c.toDataURL("image/png");
  };
  return {tag: out.tag, input: png(sent), output: png(out.image), prompt: lsd.stats?.prompt};
};

// -- the session ---------------------------------------------------------------------------

function onMessage(event) {
  const msg = JSON.parse(event.data);
  if (msg.type === "stats") { lsd.stats = msg; showStats(); }
  else if (msg.type === "prompt") {
    lsd.prompt = msg.text;
    status(`Prompt: ${msg.text} (understood as: ${msg.understood_as})` +
           (msg.warning ? `: ${msg.warning}` : ""));
  }
  else if (msg.type === "error") status(msg.message, true);
}

async function waitForCandidates(peer, ms) {
  if (peer.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") resolve(); };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);  // send what we have
  });
}

async function start() {
  lsd.error = "";
  lsd.running = true;
  $("start").textContent = "Stop";
  $("start").className = "stop";
  status("Starting…");
  try {
    const sent = await startSource($("source").value);
    pc = new RTCPeerConnection({iceServers: []});  // same machine or LAN: no STUN
    const track = sent.getVideoTracks()[0];
    const sender = pc.addTransceiver(track, {direction: "sendrecv", streams: [sent]}).sender;
    const parameters = sender.getParameters();
    parameters.degradationPreference = "maintain-resolution";  // keep the counter readable
    await sender.setParameters(parameters).catch(() => {});
    channel = pc.createDataChannel("control");
    channel.onmessage = onMessage;
    pc.ontrack = (event) => {
      // a live restyle, not a film: ask the receiver to buffer as little as it can
      if ("jitterBufferTarget" in event.receiver) event.receiver.jitterBufferTarget = 0;
      else if ("playoutDelayHint" in event.receiver) event.receiver.playoutDelayHint = 0;
      output.srcObject = event.streams[0] || new MediaStream([event.track]);
      output.requestVideoFrameCallback(onOutputFrame);
    };
    const peer = pc;
    peer.onconnectionstatechange = () => {
      const state = peer.connectionState;
      if (state === "connected") status(`Connected: ${$("prompt").value}`);
      if (state === "failed" || state === "closed") {
        stop();
        status(`Session ended (connection ${state})`, true);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForCandidates(pc, 3000);
    const res = await fetch(withToken("offer"), {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({type: "offer", sdp: pc.localDescription.sdp,
                            prompt: $("prompt").value, tag: true}),
    });
    if (!res.ok) throw new Error(await errorOf(res));
    await pc.setRemoteDescription(await res.json());
    status("Connecting…");
  } catch (e) {
    stop();
    status(e.message || String(e), true);
  }
}

function stop() {
  lsd.running = false;
  $("start").textContent = "Start";
  $("start").className = "";
  clearInterval(timer);
  timer = null;
  media?.getTracks().forEach((t) => t.stop());
  media = null;
  channel = null;
  const peer = pc;
  pc = null;
  if (peer) {
    peer.onconnectionstatechange = null;  // a stop by the user is not an error
    peer.close();
  }
  output.srcObject = null;
  status("Stopped.");
}

$("start").onclick = () => (lsd.running ? stop() : start());
$("prompt-form").onsubmit = (event) => {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (channel?.readyState === "open") channel.send(JSON.stringify({type: "prompt", text}));
  else status(`Prompt for the next session: ${text}`);
};
setInterval(showStats, 1000);
loadStyles().catch((e) => status(`could not load styles: ${e.message}`, true));
