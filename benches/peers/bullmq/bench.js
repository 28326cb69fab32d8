// BullMQ peer of `examples/queue_bench.rs`: the same scenario on a local redis-server.
//
// 1. throughput: `--workers` Worker objects (each with `--concurrency`, default 32 x 16,
//    the same 512 slots as queue_bench's 32 consumers x 16 slots) process no-op jobs
//    while `--submitters` producer connections keep `--window` `queue.add` calls in
//    flight each (queue_bench: 8 x 256). Jobs/s from the first add until every job
//    completed.
// 2. latency: one Worker with concurrency 1, one job at a time; time from calling
//    `queue.add` to the processor starting (add -> active), 50 warm-up jobs then
//    `--samples`; p50/p99/max in microseconds.
//
// The script starts its own redis-server on 127.0.0.1 on a free port (no persistence
// unless `--aof always|everysec`), and stops it by PID when done. Every loop is
// bounded (job counts, a 60 s readiness limit, a 600 s run limit). Output: one JSON
// line in the shape `queue_bench --json` prints.
//
//   npm install && node bench.js --tasks 50000 --samples 1000
'use strict';

const { spawn } = require('node:child_process');
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

function args() {
  const a = {
    tasks: 50000, workers: 32, concurrency: 16, submitters: 8, window: 256,
    samples: 1000, aof: 'no', redis: 'redis-server',
  };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown flag ${v[i]}`);
    a[k] = typeof a[k] === 'number' ? Number(v[i + 1]) : v[i + 1];
  }
  return a;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// User + system CPU seconds of a process, from /proc (Linux, 100 ticks a second).
function cpuSecs(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch (_) {
    return null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startRedis(a) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullmq-peer-'));
  const flags = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--daemonize', 'no', '--protected-mode', 'yes'];
  if (a.aof === 'no') flags.push('--appendonly', 'no');
  else flags.push('--appendonly', 'yes', '--appendfsync', a.aof);
  const child = spawn(a.redis, flags, { stdio: 'ignore' });
  const conn = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  // Bounded wait for readiness: 600 x 100 ms.
  for (let i = 0; i < 600; i++) {
    const c = new IORedis({ ...conn, lazyConnect: true, retryStrategy: () => null });
    try {
      await c.connect();
      await c.ping();
      c.disconnect();
      return { child, conn, dir };
    } catch (_) {
      c.disconnect();
      await sleep(100);
    }
  }
  child.kill('SIGTERM');
  throw new Error('redis-server did not start');
}

async function throughput(a, conn, name) {
  const total = Math.floor(a.tasks / a.submitters) * a.submitters;
  let done = 0;
  let resolveAll;
  const all = new Promise((r) => { resolveAll = r; });
  const workers = [];
  for (let i = 0; i < a.workers; i++) {
    const w = new Worker(name, async () => null, { connection: conn, concurrency: a.concurrency });
    w.on('completed', () => { done += 1; if (done >= total) resolveAll(); });
    workers.push(w);
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  const queues = [];
  for (let s = 0; s < a.submitters; s++) queues.push(new Queue(name, { connection: conn }));
  await Promise.all(queues.map((q) => q.waitUntilReady()));
  const start = process.hrtime.bigint();
  const per = total / a.submitters;
  await Promise.all(queues.map(async (q, s) => {
    const inflight = new Set();
    for (let i = 0; i < per; i++) {
      if (inflight.size >= a.window) await Promise.race(inflight);
      const p = q.add('noop', { args: {}, idempotencyKey: `${s}-${i}` }).then(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
  }));
  await all;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all(queues.map((q) => q.close()));
  return total / secs;
}

async function latency(a, conn, name) {
  let onStart = null;
  const w = new Worker(name, async () => { if (onStart) onStart(process.hrtime.bigint()); return null; },
    { connection: conn, concurrency: 1 });
  await w.waitUntilReady();
  const q = new Queue(name, { connection: conn });
  await q.waitUntilReady();
  const us = [];
  for (let i = 0; i < a.samples + 50; i++) {
    const started = new Promise((r) => { onStart = r; });
    const t0 = process.hrtime.bigint();
    await q.add('lat', { args: {}, idempotencyKey: `lat-${i}` });
    const t1 = await started;
    if (i >= 50) us.push(Math.max(1, Number((t1 - t0) / 1000n)));
    // Let the completion land so that the worker is idle for the next sample.
    await sleep(1);
  }
  await w.close();
  await q.close();
  us.sort((x, y) => x - y);
  const at = (p) => us[Math.min(us.length - 1, Math.floor(p * us.length))];
  return { p50: at(0.5), p99: at(0.99), max: us[us.length - 1] };
}

async function main() {
  const a = args();
  const redis = await startRedis(a);
  const limit = setTimeout(() => {
    redis.child.kill('SIGTERM');
    console.error('bullmq peer: 600 s limit reached');
    process.exit(2);
  }, 600_000);
  try {
    const c0 = [cpuSecs('self'), cpuSecs(redis.child.pid)];
    const t0 = process.hrtime.bigint();
    const tps = await throughput(a, redis.conn, `tp-${process.pid}`);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c1 = [cpuSecs('self'), cpuSecs(redis.child.pid)];
    const cores = (i) => (c0[i] === null || c1[i] === null ? null
      : Math.round(((c1[i] - c0[i]) / wall) * 100) / 100);
    const lat = await latency(a, redis.conn, `lat-${process.pid}`);
    const total = Math.floor(a.tasks / a.submitters) * a.submitters;
    console.log(JSON.stringify({
      system: `bullmq ${require('bullmq/package.json').version}`,
      tasks: total, consumers: a.workers, slots: a.concurrency,
      submitters: a.submitters, window: a.window, durable: a.aof !== 'no' ? `aof ${a.aof}` : 'no',
      tasks_per_s: Math.round(tps), lat_samples: a.samples,
      lat_p50_us: lat.p50, lat_p99_us: lat.p99, lat_max_us: lat.max,
      bench_cores: cores(0), broker_cores: cores(1),
    }));
  } finally {
    clearTimeout(limit);
    if (redis.child.exitCode === null) {
      const exited = new Promise((r) => redis.child.once('exit', r));
      redis.child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(redis.dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
