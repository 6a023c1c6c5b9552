// What happened to a batch of tasks: attempts (one bar each) with their times,
// from the workers' live events or from a saved run's records. board.js draws
// the state at any moment T from these times, so live and replay share it.
// An ES module: main.js imports it in the page, tests/js/ under Node.

function taskNumber(messageId) {
  return String(messageId ?? "").split(".").pop();  // message_id is "<batch>.<n>"
}

function naturalOrder(a, b) {
  return a.localeCompare(b, undefined, { numeric: true });
}

export class Batch {
  constructor(id) {
    this.id = id;
    this.attempts = [];
    this.open = new Map();  // "message_id|worker" -> its attempt not yet ended
    this.latest = new Map();  // message_id -> its latest attempt (batches of 100,000 tasks: no scans)
    this.quick = new Map();  // worker -> Map(epoch second -> tasks with no work done)
    this.links = [];  // [attempt cut short, the next attempt at its task]
    this.start = Infinity;
    this.end = -Infinity;
  }

  touch(t) {
    if (t == null) return;
    this.start = Math.min(this.start, t);
    this.end = Math.max(this.end, t);
  }

  apply(e) {
    switch (e.event) {
      case "received": this.attempt(e, e.at).received = e.at; break;
      case "started": this.attempt(e, e.started).started = e.started; break;
      case "done":
        if (e.finished <= e.started) { this.count(e.worker, e.finished, 1); break; }
        this.end_(this.attempt(e, e.started), "done", e.started, e.finished);
        break;
      case "rejected": this.end_(this.attempt(e, e.started), "rejected", e.started, e.started); break;
      case "cut": this.cut(e); break;
      case "quick": this.count(e.worker, e.at, e.count); break;
    }
  }

  attempt(e, t) {
    const key = `${e.message_id}|${e.worker}`;
    let a = this.open.get(key) ?? this.revived(key, e);
    if (!a) {
      a = { id: this.attempts.length, key, worker: e.worker, task: taskNumber(e.message_id), messageId: e.message_id,
            text: e.task, redelivered: !!e.redelivered, received: null, started: null, finished: null, state: null };
      const earlier = this.latest.get(a.messageId);
      if (earlier) {
        if (earlier.state === null) this.cutShort(earlier, t);  // a worker killed without a word
        this.links.push([earlier, a]);
      }
      this.attempts.push(a);
      this.latest.set(a.messageId, a);
      this.open.set(key, a);
    }
    this.touch(t);
    return a;
  }

  // An attempt cut because its worker seemed gone, whose worker speaks again: it was not gone.
  revived(key, e) {
    const latest = this.latest.get(e.message_id);
    if (!latest || latest.key !== key || !latest.guessed || e.redelivered !== latest.redelivered) return null;
    Object.assign(latest, { state: null, finished: null, guessed: false });
    this.open.set(key, latest);
    return latest;
  }

  end_(a, state, started, finished) {
    a.started = started;
    a.finished = finished;
    a.state = state;
    this.open.delete(a.key);
    this.touch(finished);
  }

  cut(e) {
    // A "done" taken back (its acknowledgement never reached the broker) or a task handed back.
    const done = this.attempts.find(a => a.key === `${e.message_id}|${e.worker}` && a.started === e.started);
    if (done && done.state === "done") { done.state = "cut"; return; }
    this.cutShort(this.attempt(e, e.started), e.at ?? e.started);
  }

  cutShort(a, t) {
    this.end_(a, "cut", a.started ?? t, t);
  }

  cutAllOf(worker, t) {
    for (const a of [...this.open.values()]) {
      if (a.worker === worker) { this.cutShort(a, t); a.guessed = true; }
    }
  }

  count(worker, t, n) {
    if (!this.quick.has(worker)) this.quick.set(worker, new Map());
    const seconds = this.quick.get(worker), second = Math.floor(t);
    seconds.set(second, (seconds.get(second) ?? 0) + n);
    this.touch(t);
  }

  workers() {
    return [...new Set([...this.attempts.map(a => a.worker), ...this.quick.keys()])].sort(naturalOrder);
  }

  // The --wait table's figures at moment T: tasks and busy seconds per worker, makespan, lower bound.
  figures(T = Infinity) {
    const rows = new Map(this.workers().map(w => [w, { tasks: 0, busy: 0 }]));
    const done = this.attempts.filter(a => a.state === "done" && a.finished <= T);
    for (const a of done) { rows.get(a.worker).tasks += 1; rows.get(a.worker).busy += a.finished - a.started; }
    for (const [worker, seconds] of this.quick) {
      for (const [second, n] of seconds) if (second <= T) rows.get(worker).tasks += n;
    }
    const durations = done.map(a => a.finished - a.started);
    const workers = this.workersBy(T).size;
    const started = this.attempts.filter(a => a.started !== null && a.started <= T).map(a => a.started);
    const makespan = done.length ? Math.max(...done.map(a => a.finished)) - Math.min(...started) : null;
    const total = durations.reduce((s, d) => s + d, 0);
    const lowerBound = done.length ? Math.max(total / Math.max(workers, 1), Math.max(...durations)) : null;
    const running = this.attempts.some(a => a.state === null || a.finished > T);
    return { rows, makespan, lowerBound, workers, running, tasks: [...rows.values()].reduce((s, r) => s + r.tasks, 0) };
  }

  // The workers that had started a task by moment T, one with only tasks without work too:
  // each counts towards the lower bound, as in the terminal.
  workersBy(T) {
    const workers = new Set(this.attempts.filter(a => a.started !== null && a.started <= T).map(a => a.worker));
    for (const [worker, seconds] of this.quick) {
      if ([...seconds.keys()].some(second => second <= T)) workers.add(worker);
    }
    return workers;
  }
}

// The live view: the workers (attached or not, with their comings and goings) and every
// batch seen, each event to its own batch: batches overlap, and a late event of one is news.
export class Live {
  constructor() {
    this.workers = new Map();  // name -> { attached, marks: [{ t, kind: "joined" | "left" }] }
    this.batches = new Map();  // batch id -> Batch, in the order their first events came
    this.rejected = [];
  }

  worker(name) {
    if (!this.workers.has(name)) this.workers.set(name, { attached: true, marks: [] });
    return this.workers.get(name);
  }

  // The batch whose first event came last (an empty one before any).
  newest() {
    return [...this.batches.values()].pop() ?? new Batch(undefined);
  }

  apply(e) {
    if (typeof e?.worker !== "string" || !e.worker) return;  // the dashboard checked it (schema.py); this page too
    const worker = this.worker(e.worker);
    if (e.event === "attached") {
      // The broker (consumer.created) and the worker itself both say so: one mark.
      if (!worker.attached || !worker.marks.length) worker.marks.push({ t: e.at, kind: "joined" });
      worker.attached = true;
      return;
    }
    if (e.event === "leaving" || e.event === "gone") {
      if (worker.attached) worker.marks.push({ t: e.at, kind: "left" });
      worker.attached = false;
      for (const batch of this.batches.values()) batch.cutAllOf(e.worker, e.at);  // what it held goes back
      return;
    }
    worker.attached = true;  // a worker that speaks is there, whatever the last poll said
    if (!this.batches.has(e.batch)) this.batches.set(e.batch, new Batch(e.batch));
    if (e.event === "rejected") this.rejected = [...this.rejected.slice(-4), e];
    this.batches.get(e.batch).apply(e);
  }

  // The lanes of a batch's board: the workers attached now, and those that worked on it.
  lanes(batch) {
    const attached = [...this.workers].filter(([, w]) => w.attached).map(([name]) => name);
    return [...new Set([...attached, ...batch.workers()])].sort(naturalOrder);
  }
}

// A saved run (timelines/NAME.json) as a batch: its records, each attempt cut short
// (never finished, handed back, or its "done" taken back) drawn as the terminal draws it
// (segments in producer/analysis.py): until the next attempt at its task started, or until
// its worker started another task if that came first. A "cut" record has no time of its own.
export function savedRun(run) {
  const batch = new Batch(run.batch);
  const records = [...run.events].sort((a, b) => (a.finished ?? a.started) - (b.finished ?? b.started));
  for (const record of records) batch.apply(record);
  for (const a of batch.attempts) {
    if (a.state !== null && a.state !== "cut") continue;
    const retry = e => e.event === "started" && e.message_id === a.messageId;
    const later = run.events.filter(e => e.worker === a.worker || retry(e)).map(e => e.started).filter(t => t > a.started);
    batch.cutShort(a, later.length ? Math.min(...later) : a.started);
  }
  batch.name = run.name;
  // The faults a demo or check-worker.sh noted (a worker killed, a task lost), as the PNG marks them.
  batch.faults = (Array.isArray(run.marks) ? run.marks : [])
    .filter(m => Number.isFinite(m?.at) && typeof m?.label === "string")
    .map(m => ({ t: m.at, label: m.label.slice(0, 80) }));
  return batch;
}
