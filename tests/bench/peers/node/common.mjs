// The line protocol every scripted peer of `stask-bench peers` speaks (see
// tests/bench/src/peers/protocol.rs). One process runs one role of one phase:
//
//   settings                   the store's durability settings -> SETTINGS text
//   reset                      empty the peer's store          -> RESET
//   fill N                     enqueue N no-op jobs at once    -> FILLED N
//   produce PRODUCERS SECS     create no-op jobs for SECS      -> CREATED n window_s
//   stamp N GAP_MS             N stamp jobs, one at a time     -> SENT N
//   work POOL drain N          consume; time from start to Nth -> READY, DRAIN tasks_per_s
//   work POOL count            consume; "COUNT" on stdin       -> READY, COMPLETED n
//   work POOL latency N        consume N stamp jobs            -> READY, LATENCY p50_ms p99_ms
//
// A `work` process ends by itself in drain and latency mode, and when its stdin closes.

/** Wall-clock microseconds since the epoch (the daemon's `stamp` action uses the same clock). */
export const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;

/** Prints one protocol line (stdout to a pipe is synchronous on Linux). */
export const say = (line) => process.stdout.write(`${line}\n`);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The positional arguments after the script's name, as numbers where they are numbers. */
export function argv() {
  return process.argv.slice(2).map((a) => (/^\d+(\.\d+)?$/.test(a) ? Number(a) : a));
}

/**
 * Counts a consumer's work and answers the bench: `stamp` at a job's start, `complete` once
 * the peer has recorded the job as done, `begin` when the consumer starts taking jobs.
 */
export class Tally {
  constructor(mode, target, finish) {
    this.mode = mode;
    this.target = target;
    this.finish = finish;
    this.done = 0;
    this.latencies = [];
    this.started = null;
    if (mode === "count") {
      let buffered = "";
      process.stdin.setEncoding("utf8");
      process.stdin.on("data", (chunk) => {
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line === "COUNT") say(`COMPLETED ${this.done}`);
        }
      });
    }
    // The bench closing our stdin (or dying) ends the consumer in every mode.
    process.stdin.on("end", () => this.finish(0));
    process.stdin.resume();
  }

  begin() {
    if (this.started === null) this.started = performance.now();
  }

  stamp(t0) {
    if (this.mode === "latency") this.latencies.push((nowUs() - t0) / 1000);
  }

  complete() {
    this.done += 1;
    if (this.done !== this.target) return;
    if (this.mode === "drain") {
      const secs = (performance.now() - this.started) / 1000;
      say(`DRAIN ${this.target / secs}`);
      this.finish(0);
    } else if (this.mode === "latency") {
      const lat = this.latencies.sort((a, b) => a - b);
      // The same ranks as the bench's own latency figure.
      const p50 = lat[Math.floor(lat.length / 2)];
      const p99 = lat[Math.floor((lat.length * 99) / 100)];
      say(`LATENCY ${p50} ${p99}`);
      this.finish(0);
    }
  }
}

/** Reports a failure on stderr and exits non-zero (the bench shows the message). */
export function fail(err) {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
}
