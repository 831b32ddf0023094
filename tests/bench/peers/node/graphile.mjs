// graphile-worker on the local PostgreSQL for `stask-bench peers` (protocol: common.mjs), in its
// own schema `graphile_bench` (dropped and migrated again by `reset`). Producers use
// `addJob` (one transaction each, synchronous_commit as the server has it), the consumer is
// `run()` with `concurrency` = the pool; graphile-worker deletes a job once it completed.
import { EventEmitter } from "node:events";
import pg from "pg";
import { Logger, makeWorkerUtils, run } from "graphile-worker";
import { argv, fail, nowUs, say, sleep, Tally } from "./common.mjs";

const connectionString =
  process.env.STASK_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = "graphile_bench";
// Warnings and errors only: the default logger writes a line per job, which is not the peer's
// speed but the terminal's.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") process.stderr.write(`${message}\n`);
});

async function main() {
  const [cmd, a, b, c] = argv();
  if (cmd === "settings") {
    const client = new pg.Client({ connectionString });
    await client.connect();
    const show = async (name) => (await client.query(`SHOW ${name}`)).rows[0][name];
    const version = await show("server_version");
    const line = `PostgreSQL ${version}, synchronous_commit=${await show(
      "synchronous_commit",
    )}, fsync=${await show("fsync")}`;
    await client.end();
    say(`SETTINGS ${line}`);
  } else if (cmd === "reset") {
    const client = new pg.Client({ connectionString });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
    const utils = await makeWorkerUtils({ connectionString, schema, logger });
    await utils.migrate();
    await utils.release();
    say("RESET");
  } else if (cmd === "fill") {
    const utils = await makeWorkerUtils({ connectionString, schema, logger });
    await utils.withPgClient((client) =>
      client.query(
        `SELECT ${schema}.add_job('noop', '{}'::json) FROM generate_series(1, $1::int)`,
        [a],
      ),
    );
    await utils.release();
    say(`FILLED ${a}`);
  } else if (cmd === "produce") {
    // A pool of one connection per producer, each awaiting its create before the next.
    const utils = await makeWorkerUtils({ connectionString, schema, logger, maxPoolSize: a });
    await Promise.all(
      Array.from({ length: a }, () => utils.withPgClient((client) => client.query("SELECT 1"))),
    );
    let created = 0;
    const started = performance.now();
    const deadline = started + b * 1000;
    await Promise.all(
      Array.from({ length: a }, async () => {
        while (performance.now() < deadline) {
          await utils.addJob("noop", {});
          created += 1;
        }
      }),
    );
    say(`CREATED ${created} ${(performance.now() - started) / 1000}`);
    await utils.release();
  } else if (cmd === "stamp") {
    const utils = await makeWorkerUtils({ connectionString, schema, logger });
    await utils.withPgClient((client) => client.query("SELECT 1"));
    for (let i = 0; i < a; i++) {
      const t0 = nowUs();
      await utils.addJob("stamp", { t0 });
      await sleep(b);
    }
    await utils.release();
    say(`SENT ${a}`);
  } else if (cmd === "work") {
    const tally = new Tally(b, c, (code) => process.exit(code));
    const events = new EventEmitter();
    // The clock starts when the pool first asks for a job (connections and the schema
    // check done), as ours starts at the daemon's ready line.
    events.on("worker:getJob:start", () => tally.begin());
    events.on("job:complete", ({ error }) => {
      if (error) fail(error);
      tally.complete();
    });
    events.on("pool:listen:success", () => say("READY"));
    await run({
      connectionString,
      schema,
      logger,
      events,
      concurrency: a,
      noHandleSignals: true,
      taskList: {
        noop: async () => {},
        stamp: async (payload) => tally.stamp(payload.t0),
      },
    });
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

main().catch(fail);
