// What happened to a batch of tasks: attempts (one bar each) with their times,
// from the workers' live events or from a saved run's records. board.js draws
// the state at any moment T from these times, so live and replay share it.
// An ES module: main.js imports it in the page, tests/js/ under Node.

// What a page holds is bounded whatever arrives: bars a batch, batches, workers and lanes.
export const MAX_BARS = 3000, MAX_BATCHES = 20, MAX_WORKERS = 200, MAX_LANES = 24;
// The lane of a consumer the broker counts but no event has named yet (attached before the
// dashboard listened): "\u0000" begins no name a page draws otherwise.
export const UNHEARD = "\u0000unheard-";

function taskNumber(messageId) {
  return String(messageId ?? "").split(".").pop();  // message_id is "<batch>.<n>"
}

// The state of an attempt at moment T, or null if nothing of it had happened yet.
export function stateAt(a, T) {
  if (a.state !== null && a.finished <= T) return a.state;
  if (a.started !== null && a.started <= T) return "running";
  if (a.received !== null && a.received <= T) return "waiting";
  return null;
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
    this.prefetch = new Map();  // worker -> the prefetch its records say it had
    this.name = null;  // the run's name and how many tasks were sent, if the producer said
    this.sent = null;
    this.faults = [];  // [{ t, label }]: what a demo noted (a node killed ...)
    this.notDrawn = 0;  // attempts and blocks beyond MAX_BARS
    this.start = Infinity;
    this.end = -Infinity;
  }

  // The producer's word before it sends (a "sending" event, or a saved run's header).
  announced({ name, sent, at }) {
    this.name = typeof name === "string" ? name : null;
    this.sent = Number.isInteger(sent) ? sent : null;
    this.announcedAt = Number.isFinite(at) ? at : -Infinity;
  }

  touch(t) {
    if (t == null) return;
    this.start = Math.min(this.start, t);
    this.end = Math.max(this.end, t);
  }

  apply(e) {
    if (Number.isInteger(e.prefetch)) this.prefetch.set(e.worker, e.prefetch);
    switch (e.event) {
      case "received": this.attempt(e, e.at).received = e.at; break;
      case "started": this.movedOn(e); this.attempt(e, e.started).started = e.started; break;
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
    if (!a && this.attempts.length >= MAX_BARS) {
      this.notDrawn += 1;
      return { received: null };  // counted, not kept
    }
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
    // A lab worker's records say when the task reached it: a replay draws its buffer from that.
    if (a.received === null && Number.isFinite(e.received)) a.received = e.received;
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
    if (done && (done.state === "cut" || done.state === "unheard")) {  // ended already, where its worker moved on
      Object.assign(done, { state: "cut", guessed: false });
      return;
    }
    this.cutShort(this.attempt(e, e.started), e.at ?? e.started);
  }

  cutShort(a, t) {
    this.end_(a, "cut", a.started ?? t, t);
  }

  // A worker works on one task at a time: one that starts a task has ended any it had
  // started before (lost with its connection, say; its "cut" comes later, once it reconnects).
  // If the dashboard heard nothing for a while meanwhile (it lost its node), how the attempt
  // ended is not known (a task done was once drawn as cut short): "unheard".
  movedOn(e) {
    for (const a of [...this.open.values()]) {
      if (a.worker === e.worker && a.started !== null && a.started < e.started && a.messageId !== e.message_id) {
        this.cutShort(a, e.started);
        a.guessed = true;
        const missed = (this.gaps?.() ?? []).some(gap => gap.from <= e.started && (gap.to ?? Infinity) >= a.started);
        if (missed) a.state = "unheard";
      }
    }
  }

  cutAllOf(worker, t) {
    for (const a of [...this.open.values()]) {
      if (a.worker === worker) { this.cutShort(a, t); a.guessed = true; }
    }
  }

  count(worker, t, n) {
    if (!this.quick.has(worker)) this.quick.set(worker, new Map());
    const seconds = this.quick.get(worker), second = Math.floor(t);
    if (!seconds.has(second) && this.blocks >= MAX_BARS) { this.notDrawn += n; return; }
    if (!seconds.has(second)) this.blocks = (this.blocks ?? 0) + 1;
    seconds.set(second, (seconds.get(second) ?? 0) + n);
    this.touch(second);  // its block covers the whole second: the board starts with it, not under the next
    this.touch(t);
  }

  workers() {
    return [...new Set([...this.attempts.map(a => a.worker), ...this.quick.keys()])].sort(naturalOrder);
  }

  // The figures to show at moment T, as the dashboard computed them (lab/figures.py): live,
  // the latest it sent (so far, or final once over); replayed, the saved run's step reached
  // by T, and its final figures at its end. null before any came.
  figuresAt(T = Infinity) {
    if (this.final && T >= this.end) return { ...this.final, over: true };
    if (this.steps) return this.steps.filter(step => step.at <= T).pop() ?? null;
    return this.view?.figures ?? null;
  }
}

// The live view: the workers (attached or not, with their comings and goings) and every
// batch seen, each event to its own batch: batches overlap, and a late event of one is news.
export class Live {
  constructor() {
    this.workers = new Map();  // name -> { attached, marks: [{ t, kind: "joined" | "left" }] }
    this.batches = new Map();  // batch id -> Batch, in the order their first events came
    this.rejected = [];
    this.gaps = [];  // [{ from, to }] the dashboard heard no events (to null: it still hears none)
  }

  batch(id) {
    if (!this.batches.has(id)) {
      this.batches.set(id, Object.assign(new Batch(id), { live: true, gaps: () => this.gaps }));
      // The oldest goes, one only workers the broker never saw spoke of first.
      const older = [...this.batches.keys()].filter(key => key !== id && key !== this.current);
      const real = key => this.batches.get(key).workers().some(w => this.workers.get(w)?.seen);
      if (this.batches.size > MAX_BATCHES) this.batches.delete(older.find(key => !real(key)) ?? older[0]);
    }
    return this.batches.get(id);
  }

  // The batch the dashboard says is current (batches.py: the newest running one, of those
  // real workers worked on), else the newest.
  currentBatch() {
    return this.batches.get(this.current) ?? this.newest();
  }

  // The moment to draw a batch at: the server's clock as this page knows it, but never before
  // what the batch's events told (a clock set late drew done tasks as running), up to a minute
  // ahead of it (an event that claims the year 5000 moves nothing).
  now(serverNow, batch) {
    return Math.max(serverNow, Math.min(batch?.end ?? -Infinity, serverNow + 60));
  }

  worker(name) {
    if (!this.workers.has(name)) {
      this.workers.set(name, { attached: true, marks: [] });
      if (this.workers.size > MAX_WORKERS) {  // the oldest the broker never saw goes first
        const unseen = [...this.workers].find(([other, w]) => !w.seen && other !== name);
        this.workers.delete(unseen ? unseen[0] : this.workers.keys().next().value);
      }
    }
    return this.workers.get(name);
  }

  // The batch whose first event came last (an empty one before any).
  newest() {
    return [...this.batches.values()].pop() ?? new Batch(undefined);
  }

  apply(e) {
    if (e?.event === "sending" && typeof e.batch === "string") {
      this.batch(e.batch).announced({ name: e.name, sent: e.tasks, at: e.at });
      return;
    }
    if (typeof e?.worker !== "string" || !e.worker) return;  // the dashboard checked it (schema.py); this page too
    const worker = this.worker(e.worker);
    if (Number.isInteger(e.prefetch)) worker.prefetch = e.prefetch;
    if (e.broker === true && e.event === "attached") worker.seen = true;  // the broker's word: a real worker
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
    if (e.event === "rejected") this.rejected = [...this.rejected.slice(-4), e];
    this.batch(e.batch).apply(e);
  }

  // The lanes of a batch's board: those that worked on it, and the workers attached now that the
  // broker saw attach (a name that only says it attached is anyone's to make up); at most
  // MAX_LANES, those the broker saw first; then a lane for each consumer of task_queue
  // (`consumers`, the broker's count) that neither names.
  lanes(batch, consumers = 0) {
    const seen = name => this.workers.get(name)?.seen === true;
    const attached = [...this.workers].filter(([, w]) => w.attached).map(([name]) => name);
    const worked = batch.workers(), workedOn = new Set(worked);
    const all = [...new Set([...worked, ...attached.filter(seen)])];
    const rank = name => (seen(name) ? 0 : 2) + (workedOn.has(name) ? 0 : 1);
    const kept = all.map((name, i) => [rank(name), i, name]).sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .slice(0, MAX_LANES).map(([, , name]) => name);
    this.lanesLeftOut = all.length - kept.length;
    const named = attached.filter(name => seen(name) || workedOn.has(name)).length;
    const unheard = Math.max(0, Math.min((consumers ?? 0) - named, MAX_LANES - kept.length));
    return [...kept.sort(naturalOrder), ...Array.from({ length: unheard }, (_, i) => `${UNHEARD}${i + 1}`)];
  }

  // What the dashboard says of a batch: its figures (lab/figures.py), the faults noted for it,
  // whether they are its saved records'.
  shown(view) {
    const batch = this.batch(view.batch);
    batch.view = view;
    batch.faults = faultsOf(view.faults);
    if (typeof view.name === "string") batch.name = view.name;
  }

  // A batch whose events did not all come (the dashboard lost its broker node: a gap), drawn
  // from its saved run once send.sh --wait saved it: the records tell the whole batch.
  settle(run) {
    const batch = this.batches.get(run?.batch);
    if (!batch || !Array.isArray(run.segments)) return;
    const saved = savedRun(run);
    Object.assign(saved, { live: true, fromRecords: true, faults: batch.faults, view: batch.view });
    this.batches.set(run.batch, saved);
  }

  // The prefetch of each of these workers, as its records or its attaching said.
  prefetchOf(batch, lanes) {
    return new Map(lanes.map(w => [w, batch.prefetch.get(w) ?? this.workers.get(w)?.prefetch])
      .filter(([, n]) => Number.isInteger(n)));
  }
}

// The faults noted for a run, as text, bounded, only well-formed ones, none before `since`.
export function faultsOf(marks, since = -Infinity) {
  return (Array.isArray(marks) ? marks : [])
    .filter(m => Number.isFinite(m?.at) && typeof m?.label === "string" && m.at >= since)
    .map(m => ({ t: m.at, label: m.label.slice(0, 80) }));
}

// A saved run (timelines/NAME.json, as the dashboard serves it) as a batch: the bars are its
// segments (lab/figures.py: each task done once, each attempt cut short where it ended), a
// task without work counted in its second, each rejected task a mark; the figures are those
// the dashboard computed, so far at a few moments (steps) and final at its end.
export function savedRun(run) {
  const batch = new Batch(run.batch);
  batch.faults = faultsOf(run.marks);
  const segments = Array.isArray(run.segments) ? run.segments : [];
  const rejected = (Array.isArray(run.events) ? run.events : []).filter(e => e?.event === "rejected");
  for (const s of [...segments, ...rejected.map(e => ({ ...e, finished: e.started, state: "rejected" }))]) {
    if (Number.isInteger(s.prefetch)) batch.prefetch.set(s.worker, s.prefetch);
    if (s.state === "done" && s.finished <= s.started) { batch.count(s.worker, s.finished, 1); continue; }
    const a = { id: batch.attempts.length, key: `${s.message_id}|${s.worker}`, worker: s.worker,
                task: taskNumber(s.message_id), messageId: s.message_id, text: s.task, redelivered: !!s.redelivered,
                received: Number.isFinite(s.received) ? s.received : null, started: s.started, finished: s.finished,
                state: s.state };
    batch.attempts.push(a);
    batch.touch(a.started);
    batch.touch(a.finished);
  }
  // Each attempt cut short, linked to the next attempt at its task.
  const byStart = [...batch.attempts].sort((a, b) => a.started - b.started);
  for (const cut of byStart.filter(a => a.state === "cut")) {
    const next = byStart.find(a => a !== cut && a.messageId === cut.messageId && a.started >= cut.started);
    if (next) batch.links.push([cut, next]);
  }
  batch.announced({ name: run.name, sent: run.sent });
  batch.final = run.figures ?? null;
  batch.steps = Array.isArray(run.steps) ? run.steps : [];
  return batch;
}
