// BullMQ on the local Redis for `stask-bench peers` (protocol: common.mjs). Producers use
// `Queue.add`, the consumer is one `Worker` with `concurrency` = the pool; completed jobs are
// kept (BullMQ's default), as ours keeps finished tasks.
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { argv, fail, nowUs, say, sleep, Tally } from "./common.mjs";

const [host, port] = (process.env.STASK_BENCH_REDIS ?? "127.0.0.1:6379").split(":");
const connection = { host, port: Number(port), maxRetriesPerRequest: null };
const QUEUE = "stask-bench";

async function main() {
  const [cmd, a, b, c] = argv();
  if (cmd === "settings") {
    // What a Redis restart keeps: nothing when both are off.
    const client = new Redis(connection);
    const [, save] = await client.config("GET", "save");
    const [, aof] = await client.config("GET", "appendonly");
    const info = await client.info("server");
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
    client.disconnect();
    say(`SETTINGS Redis ${version}, save="${save}", appendonly=${aof}`);
  } else if (cmd === "reset") {
    const q = new Queue(QUEUE, { connection });
    await q.obliterate({ force: true });
    await q.close();
    say("RESET");
  } else if (cmd === "fill") {
    const q = new Queue(QUEUE, { connection });
    for (let left = a; left > 0; left -= 1000) {
      const k = Math.min(left, 1000);
      await q.addBulk(Array.from({ length: k }, () => ({ name: "noop", data: {} })));
    }
    await q.close();
    say(`FILLED ${a}`);
  } else if (cmd === "produce") {
    // One connection per producer, each awaiting its create before the next.
    const queues = Array.from({ length: a }, () => new Queue(QUEUE, { connection }));
    await Promise.all(queues.map((q) => q.waitUntilReady()));
    let created = 0;
    const started = performance.now();
    const deadline = started + b * 1000;
    await Promise.all(
      queues.map(async (q) => {
        while (performance.now() < deadline) {
          await q.add("noop", {});
          created += 1;
        }
      }),
    );
    say(`CREATED ${created} ${(performance.now() - started) / 1000}`);
    await Promise.all(queues.map((q) => q.close()));
  } else if (cmd === "stamp") {
    const q = new Queue(QUEUE, { connection });
    await q.waitUntilReady();
    for (let i = 0; i < a; i++) {
      const t0 = nowUs();
      await q.add("stamp", { t0 });
      await sleep(b);
    }
    await q.close();
    say(`SENT ${a}`);
  } else if (cmd === "work") {
    let worker;
    const tally = new Tally(b, c, (code) => process.exit(code));
    worker = new Worker(
      QUEUE,
      async (job) => {
        if (job.name === "stamp") tally.stamp(job.data.t0);
      },
      { connection, concurrency: a, autorun: false },
    );
    worker.on("completed", () => tally.complete());
    worker.on("error", fail);
    await worker.waitUntilReady();
    say("READY");
    tally.begin();
    worker.run().catch(fail);
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

main().catch(fail);
