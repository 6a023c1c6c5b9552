// The page: the live board fed by /events (Server-Sent Events), and replays
// of saved runs, one or two on one time axis.
import { Board } from "./board.js";
import { Live, savedRun } from "./model.js";

const boards = document.getElementById("boards");
const $ = id => document.getElementById(id);
const dashboard = { live: new Live(), clockOffset: 0, mode: "live", replay: null };
window.labDashboard = dashboard;  // for the curious, and the tests
let liveBoard = new Board(boards, "Live: the current batch", "live");
let dirty = true;

function serverNow() {
  return Date.now() / 1000 + dashboard.clockOffset;
}

// --- Live -----------------------------------------------------------------------

function showQueues(message) {
  dashboard.clockOffset = message.now - Date.now() / 1000;
  const tasks = message.task_queue, dead = message.dead_letter_queue;
  $("ready").textContent = tasks ? tasks.ready.toLocaleString() : "?";
  $("unacked").textContent = tasks ? tasks.unacked.toLocaleString() : "?";
  $("consumers").textContent = tasks ? tasks.consumers.length : "?";
  $("dead-letters").textContent = dead ? (dead.ready + dead.unacked).toLocaleString() : "?";
  // Workers that attached before the dashboard started have said nothing yet: the broker knows them.
  for (const tag of tasks?.consumers ?? []) if (!dashboard.live.workers.has(tag)) dashboard.live.worker(tag);
}

function follow() {
  const source = new EventSource("events");  // reconnects by itself, with Last-Event-ID
  source.onopen = () => { $("connection").dataset.state = "open"; $("connection").textContent = "live"; };
  source.onerror = () => { $("connection").dataset.state = "lost"; $("connection").textContent = "reconnecting…"; };
  source.onmessage = ({ data }) => {
    const message = JSON.parse(data);
    if (message.type === "snapshot") dashboard.live = new Live();
    if (message.type === "queues") showQueues(message);
    else for (const event of message.events) dashboard.live.apply(event);
    if (message.type === "events") noteDelay(message.events);
    dirty = true;
  };
}

// How long after they happened events arrive here (the workers' clocks are the server's).
function noteDelay(events) {
  const now = serverNow();
  dashboard.delays = [...(dashboard.delays ?? []).slice(-999), ...events.filter(e => e.at).map(e => now - e.at)];
}

// The batch the live board shows: the one chosen, or the newest (each batch is kept).
function shownBatch() {
  const live = dashboard.live, chosen = $("live-batch").value;
  return [...live.batches.values()].find(batch => String(batch.id) === chosen) ?? live.newest();
}

function listBatches() {
  const select = $("live-batch"), ids = [...dashboard.live.batches.keys()].map(String).reverse();
  const listed = [...select.options].slice(1).map(option => option.value);
  if (listed.join("\n") === ids.join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(select.options[0], ...ids.map(id => new Option(`batch ${id}`, id)));
  select.value = ids.includes(chosen) ? chosen : "";
}

function drawLive() {
  listBatches();
  const live = dashboard.live, batch = shownBatch();
  const now = serverNow();
  const t0 = Number.isFinite(batch.start) ? batch.start : now;
  const open = batch.attempts.some(a => a.state === null);
  const end = open ? now : Math.max(batch.end, t0);
  liveBoard.draw({ batch, lanes: live.lanes(batch), workers: live.workers, T: now, t0, span: end - t0 });
  $("batch-name").textContent = batch.id ? `batch ${batch.id}` : "";
  $("rejected-list").textContent = live.rejected.length
    ? `· rejected: ${live.rejected.map(e => `${JSON.stringify(e.task)} by ${e.worker}`).join(", ")}` : "";
  return open;
}

// --- Replay -----------------------------------------------------------------------

async function listRuns() {
  const names = await (await fetch("api/runs")).json();
  for (const select of [$("run-a"), $("run-b")]) {
    const keep = select.id === "run-b" ? '<option value="">(none)</option>' : "";
    select.innerHTML = keep;
    for (const name of names) select.add(new Option(name, name));
  }
  if (names.length > 1) $("run-b").value = names[1];
}

async function loadRun(name) {
  const response = await fetch(`api/runs/${encodeURIComponent(name)}`);
  if (!response.ok) throw new Error(`no saved run ${name}`);
  return savedRun(await response.json());
}

async function play() {
  const names = [$("run-a").value, $("run-b").value].filter(Boolean);
  if (!names.length) return;
  const runs = await Promise.all(names.map(loadRun));
  if (dashboard.replay) dashboard.replay.boards.forEach(board => board.remove());
  const span = Math.max(...runs.map(run => run.end - run.start));
  dashboard.replay = {
    runs, span, speed: Number($("speed").value), began: performance.now(), finished: false,
    boards: runs.map((run, i) => new Board(boards, `Replay: ${run.name} (batch ${run.id})`, `replay-${i + 1}`)),
  };
}

function drawReplay() {
  const replay = dashboard.replay;
  if (!replay) return false;
  const elapsed = Math.min(((performance.now() - replay.began) / 1000) * replay.speed, replay.span);
  replay.runs.forEach((run, i) => {
    replay.boards[i].draw({ batch: run, lanes: run.workers(), T: run.start + elapsed, t0: run.start, span: replay.span });
  });
  replay.finished = elapsed >= replay.span;
  boards.dataset.replay = replay.finished ? "finished" : "playing";
  return !replay.finished;
}

// --- Both ---------------------------------------------------------------------------

let lastDrawn = 0;
function frame(time) {
  // New events: drawn on the next frame. Bars growing: ten times a second is smooth enough.
  if (dirty || time - lastDrawn > 100) {
    dirty = false;
    lastDrawn = time;
    if (dashboard.mode === "live") drawLive(); else drawReplay();
  }
  requestAnimationFrame(frame);
}

function choose(mode) {
  dashboard.mode = mode;
  $("show-live").classList.toggle("chosen", mode === "live");
  $("show-replay").classList.toggle("chosen", mode === "replay");
  $("replay-controls").hidden = mode !== "replay";
  liveBoard.wrap.hidden = mode !== "live";
  for (const board of dashboard.replay?.boards ?? []) board.wrap.hidden = mode !== "replay";
  if (mode === "replay") listRuns();
  dirty = true;
}

$("show-live").onclick = () => choose("live");
$("live-batch").onchange = () => { dirty = true; };
$("show-replay").onclick = () => choose("replay");
$("speed").oninput = () => { $("speed-shown").textContent = `${$("speed").value}×`; };
$("play").onclick = () => play().then(() => { dirty = true; });
follow();
requestAnimationFrame(frame);
