// The page: the live board fed by /events (Server-Sent Events), and replays
// of saved runs, one or two on one time axis.
import { Board } from "./board.js";
import { Live, MAX_BARS, savedRun } from "./model.js";
import { PoolChart } from "./poolchart.js";
import { poolLabel, prefetchText, runText, shownText } from "./words.js";

const boards = document.getElementById("boards");
const $ = id => document.getElementById(id);
const dashboard = { live: new Live(), clockOffset: 0, mode: "live", replay: null, streaming: false, refused: 0 };
window.labDashboard = dashboard;  // for the curious, and the tests
let liveBoard = new Board(boards, "Live: the current batch", "live");
const poolChart = new PoolChart($("pool-chart"));
let dirty = true;

function serverNow() {
  return Date.now() / 1000 + dashboard.clockOffset;
}

// --- Live -----------------------------------------------------------------------

function count(figure) {
  return Number.isFinite(figure) ? figure.toLocaleString() : "?";
}

function showQueues(message) {
  if (Number.isFinite(message.now)) dashboard.clockOffset = message.now - Date.now() / 1000;
  const tasks = message.task_queue, dead = message.dead_letter_queue;
  $("ready").textContent = count(tasks?.ready);
  $("unacked").textContent = count(tasks?.unacked);
  $("consumers").textContent = count(tasks?.consumers);
  dashboard.consumers = Number.isInteger(tasks?.consumers) ? tasks.consumers : 0;
  // Within a minute of losing a node the broker may still count its consumers (RabbitMQ 4.3
  // holds a lost consumer's tasks 60 s): said, not hidden.
  const status = dashboard.status, now = serverNow();
  const nodeLost = status?.lost_at || (status?.gaps ?? []).some(gap => now - gap.to < 60);
  $("queues-uncertain").textContent = nodeLost ? "(a node was lost within the minute: these may count its consumers)"
    : tasks && !Number.isFinite(tasks.unacked) ? "(unacked: no node has the figure yet)" : "";
  $("dead-letters").textContent = dead ? count(dead.ready + (dead.unacked ?? 0)) : "?";
  if (message.over_time) showPool(message.over_time, message.now);
}

const clock = t => new Date(t * 1000).toLocaleTimeString();

function showPool(overTime, now) {
  const minutes = (overTime.window / 60).toLocaleString();
  $("pool-heading").textContent = `task_queue and its workers, up to the last ${minutes} minutes`;
  poolChart.draw(overTime, now, clock);
  $("pool-chart").setAttribute("aria-label", poolLabel(overTime, clock));
}

// "live" only while both hold: this page hears the dashboard, and the dashboard hears a broker.
const events = (n, kind = "") => `${n.toLocaleString()} ${kind}${n === 1 ? "event" : "events"}`;

function showConnection() {
  const status = dashboard.status, label = $("connection");
  const state = !dashboard.streaming ? "lost" : status?.broker ? "open" : "stale";
  label.dataset.state = state;
  label.textContent = { open: "live", lost: "reconnecting…", stale: "reconnecting to the broker…" }[state];
  const gaps = status?.gaps ?? [];
  $("gaps").hidden = !gaps.length && !status?.lost_at;
  $("gaps").textContent = [
    ...gaps.map(gap => `no events from ${clock(gap.from)} to ${clock(gap.to)} (the dashboard lost its broker node)`),
    ...(status?.lost_at ? [`no events since ${clock(status.lost_at)}`] : []),
  ].join(" · ");
  const dropped = (status?.dropped ?? 0) + dashboard.refused, late = status?.out_of_time ?? 0;
  const flooded = status?.flooded ?? 0;
  $("dropped").hidden = !dropped && !late && !flooded;
  $("dropped").textContent = [
    dropped ? `${events(dropped, "malformed ")} dropped` : "",
    late ? `${events(late)} dropped: their times were far from when they arrived` : "",
    flooded ? `${flooded.toLocaleString()} events or messages not shown: more came than a page can draw` : "",
  ].filter(Boolean).join(" · ");
}

function receive(message) {
  if (message.type === "snapshot") dashboard.live = Object.assign(new Live(), { gaps: dashboard.live.gaps });
  if (message.type === "queues") return showQueues(message);
  if (message.type === "status") {
    dashboard.status = message;
    dashboard.live.gaps = [...(message.gaps ?? []), ...(message.lost_at ? [{ from: message.lost_at, to: null }] : [])];
    return showConnection();
  }
  if (message.type === "batch") return dashboard.live.shown(message);
  if (message.type === "current") { dashboard.live.current = message.batch; return; }
  if (!Array.isArray(message.events)) return;
  for (const event of message.events) {
    try { dashboard.live.apply(event); } catch (error) { dashboard.refused += 1; console.warn("event refused", error); }
  }
  if (message.type === "events") noteDelay(message.events);
}

// An EventSource reconnects by itself (with Last-Event-ID) after a network error, but gives
// up for good on an HTTP error (a 502 from a proxy, a 503), and waits for ever on a request
// nobody answers: then a new one, after a pause.
const RETRY_MS = 3000, OPEN_WITHIN_MS = 8000;
function follow() {
  const source = dashboard.source = new EventSource("events");
  const unanswered = setTimeout(() => {
    if (source.readyState !== EventSource.CONNECTING) return;
    source.close();
    follow();
  }, OPEN_WITHIN_MS);
  source.onopen = () => { clearTimeout(unanswered); dashboard.streaming = true; showConnection(); };
  source.onerror = () => {
    dashboard.streaming = false;
    showConnection();
    if (source.readyState === EventSource.CLOSED) { clearTimeout(unanswered); setTimeout(follow, RETRY_MS); }
  };
  source.onmessage = ({ data }) => {
    try { receive(JSON.parse(data)); } catch (error) { dashboard.refused += 1; console.warn("message refused", error); }
    dirty = true;
  };
}

// How long after they happened events arrive here (the workers' clocks are the server's).
function noteDelay(events) {
  const now = serverNow();
  const delays = events.slice(-1000).filter(e => Number.isFinite(e.at)).map(e => now - e.at);
  dashboard.delays = [...(dashboard.delays ?? []).slice(-999), ...delays].slice(-1000);
}

// The batch the live board shows: the one chosen, or the newest (each batch is kept).
function shownBatch() {
  const live = dashboard.live, chosen = $("live-batch").value;
  return [...live.batches.values()].find(batch => String(batch.id) === chosen) ?? live.currentBatch();
}

// The batches to pick from, newest first, each by its run's name once send.sh said it.
function listBatches() {
  const select = $("live-batch"), batches = [...dashboard.live.batches.values()].reverse();
  const wanted = batches.map(batch => [String(batch.id), runText(batch)]);
  const listed = [...select.options].slice(1).map(option => [option.value, option.text]);
  if (JSON.stringify(listed) === JSON.stringify(wanted)) return;
  const chosen = select.value;
  select.replaceChildren(select.options[0], ...wanted.map(([id, text]) => new Option(text, id)));
  select.value = wanted.some(([id]) => id === chosen) ? chosen : "";
}

// The one live region: what the board shown says, in words, at most every 5 s. It is
// given the board's words as they are when it speaks (drawn this frame, by this frame's clock).
let announced = 0;
function announce(board) {
  const text = board.root.getAttribute("aria-label");
  if (performance.now() - announced < 5000 || $("announce").textContent === text) return;
  announced = performance.now();
  $("announce").textContent = text;
}

// A batch the dashboard now shows from its saved records (send.sh --wait saved it) whose bars
// here are unfinished (events went missing in a gap): drawn from the saved run, asked for once.
function settleFromRecords(batch) {
  if (!batch.view?.from_records || batch.fromRecords || batch.asked || !batch.name) return;
  if (!batch.attempts.some(a => a.state === null)) return;
  batch.asked = true;
  fetch(`api/runs/${encodeURIComponent(batch.name)}`)
    .then(response => (response.ok ? response.json() : null))
    .then(saved => { if (saved?.batch === batch.id) { dashboard.live.settle(saved); dirty = true; } })
    .catch(() => {});
}

function drawLive() {
  listBatches();
  const live = dashboard.live, batch = shownBatch();
  const now = live.now(serverNow(), batch);
  const t0 = Number.isFinite(batch.start) ? batch.start : now;
  const open = batch.attempts.some(a => a.state === null);
  const end = open ? now : Math.max(batch.end, t0);
  const lanes = live.lanes(batch, dashboard.consumers);
  liveBoard.retitle($("live-batch").value ? "Live: the batch you picked" : "Live: the current batch");
  liveBoard.draw({ batch, lanes, workers: live.workers, T: now, t0, span: end - t0 });
  $("batch-name").textContent = [runText(batch), prefetchText(live.prefetchOf(batch, lanes)),
    batch.fromRecords ? "drawn from its saved records (events were missed)" : "",
    live.lanesLeftOut ? `${live.lanesLeftOut.toLocaleString()} more workers not drawn` : "",
    batch.notDrawn ? `${batch.notDrawn.toLocaleString()} more attempts not drawn (over ${MAX_BARS.toLocaleString()})` : "",
    batch.view?.truncated ? "figures of its first events only (too many)" : ""].filter(Boolean).join(" · ");
  settleFromRecords(batch);
  announce(liveBoard);
  $("rejected-list").textContent = live.rejected.length
    ? `rejected: ${live.rejected.map(e => `${JSON.stringify(shownText(e.task, 60))} by ${shownText(e.worker)}`)
      .join(", ")}` : "";
  return open;
}

// --- Replay -----------------------------------------------------------------------

async function listRuns() {
  const names = await (await fetch("api/runs")).json();
  for (const select of [$("run-a"), $("run-b")]) {
    const none = select.id === "run-b" ? [new Option("(none)", "")] : [];
    select.replaceChildren(...none, ...names.map(name => new Option(shownText(name), name)));
  }
  if (names.length > 1) $("run-b").value = names[1];
}

async function loadRun(name) {
  const response = await fetch(`api/runs/${encodeURIComponent(name)}`);
  if (!response.ok) throw new Error(`no saved run ${name}`);
  return savedRun(await response.json());
}

function replayTitle(run) {
  return ["Replay: " + runText(run), prefetchText(run.prefetch)].filter(Boolean).join(" · ");
}

// The runs chosen, loaded and drawn at their first moment, ready to play.
let loads = 0;
async function load() {
  const names = [$("run-a").value, $("run-b").value].filter(Boolean);
  if (!names.length) return;
  const ticket = ++loads;
  const runs = await Promise.all(names.map(loadRun));
  if (ticket !== loads) return;  // chosen again meanwhile: the later choice wins
  if (dashboard.replay) dashboard.replay.boards.forEach(board => board.remove());
  const span = Math.max(...runs.map(run => run.end - run.start));
  dashboard.replay = {
    runs, span, began: null, finished: false,
    boards: runs.map((run, i) => new Board(boards, replayTitle(run), `replay-${i + 1}`)),
  };
  dirty = true;
}

async function play() {
  await load();
  if (dashboard.replay) Object.assign(dashboard.replay, { speed: Number($("speed").value), began: performance.now() });
}

function drawReplay() {
  const replay = dashboard.replay;
  if (!replay) return false;
  const playing = replay.began !== null;
  const elapsed = playing ? Math.min(((performance.now() - replay.began) / 1000) * replay.speed, replay.span) : 0;
  replay.finished = playing && elapsed >= replay.span;
  replay.runs.forEach((run, i) => {
    // At the end, the end itself (start + span can fall a hair short of it in floating point).
    const T = replay.finished ? Math.max(run.start + elapsed, run.end) : run.start + elapsed;
    replay.boards[i].draw({ batch: run, lanes: run.workers(), T, t0: run.start, span: replay.span });
  });
  boards.dataset.replay = replay.finished ? "finished" : playing ? "playing" : "loaded";
  announce(replay.boards[0]);
  return !replay.finished;
}

// --- Both ---------------------------------------------------------------------------

let lastDrawn = 0;
function frame(time) {
  // New events: drawn on the next frame. Bars growing: ten times a second is smooth enough.
  if (dirty || time - lastDrawn > 100) {
    dirty = false;
    lastDrawn = time;
    try {
      if (dashboard.mode === "live") drawLive(); else drawReplay();
    } catch (error) {
      console.error("drawing failed", error);  // the next frame draws again: one bad event must not stop the page
    }
  }
  requestAnimationFrame(frame);
}

function choose(mode) {
  dashboard.mode = mode;
  for (const [button, shown] of [["show-live", mode === "live"], ["show-replay", mode === "replay"]]) {
    $(button).classList.toggle("chosen", shown);
    $(button).setAttribute("aria-pressed", String(shown));
  }
  $("replay-controls").hidden = mode !== "replay";
  $("pool").hidden = mode !== "live";
  liveBoard.wrap.hidden = mode !== "live";
  for (const board of dashboard.replay?.boards ?? []) board.wrap.hidden = mode !== "replay";
  if (mode === "replay") listRuns().then(() => (dashboard.replay ? null : loadChosen()));
  dirty = true;
}

$("show-live").onclick = () => choose("live");
$("live-batch").onchange = () => { dirty = true; };
$("show-replay").onclick = () => choose("replay");
$("speed").oninput = () => { $("speed-shown").textContent = `${$("speed").value}×`; };
function replayFailed(error) {
  $("replay-error").textContent = `Cannot replay: ${error.message}`;
}

function loadChosen() {
  $("replay-error").textContent = "";
  return load().catch(replayFailed);
}

$("run-a").onchange = loadChosen;
$("run-b").onchange = loadChosen;
$("play").onclick = () => {
  $("replay-error").textContent = "";
  play().then(() => { dirty = true; }, replayFailed);
};
follow();
requestAnimationFrame(frame);
