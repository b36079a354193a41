// Sends events with the real @fluent-org/logger client and reports what the server acknowledged.
//
//   node send.js '{"port": 24224, "mode": "PackedForward", "count": 100, ...}'
//
// Options: port | path (unix socket), mode (Message, Forward, PackedForward, CompressedPackedForward),
// count, tag, batch (events per message; they are queued before the first flush), ackTimeout (ms),
// sharedKey, clientHostname, username, password, ca (a PEM file: use TLS and trust it), deadline (ms, default
// 20000: report whatever was acknowledged by then).
// Prints one JSON line: {"sent": N, "acked": N, "errors": [...]} (errors: distinct emit and socket errors).
"use strict";
const fs = require("fs");
const {FluentClient} = require("@fluent-org/logger");

const opts = JSON.parse(process.argv[2]);
const socket = opts.path ? {path: opts.path} : {host: "127.0.0.1", port: opts.port};
socket.timeout = -1;
socket.reconnect = {delay: 100, maxDelay: 1000};
if (opts.ca) {
  socket.tls = {ca: fs.readFileSync(opts.ca)};
}
const security = opts.sharedKey
  ? {
      clientHostname: opts.clientHostname || "node-client",
      sharedKey: opts.sharedKey,
      username: opts.username,
      password: opts.password,
    }
  : undefined;
const socketErrors = new Set();
const client = new FluentClient(opts.tag || "node", {
  eventMode: opts.mode,
  socket,
  security,
  ack: {ackTimeout: opts.ackTimeout || 10000},
  milliseconds: true,
  flushInterval: 20,
  sendQueueFlushLimit: {length: opts.batch || 100},
  onSocketError: (err) => socketErrors.add(`${err.name}: ${err.message}`),
});

let acked = 0;
const errors = new Set();
let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  const report = {sent: opts.count, acked, errors: [...errors, ...socketErrors]};
  process.stdout.write(JSON.stringify(report) + "\n");
  client.shutdown().catch(() => {}).finally(() => process.exit(0));
}
const emits = [];
for (let i = 0; i < opts.count; i++) {
  emits.push(
    client.emit("app", {log: `event ${i}`, seq: i}).then(
      () => { acked += 1; },
      (err) => { errors.add(`${err && err.name}: ${err && err.message}`); }
    )
  );
}
// A client whose handshake failed leaves its events pending for ever: report what happened by the deadline.
const deadline = setTimeout(finish, opts.deadline || 20000);
Promise.all(emits).then(() => { clearTimeout(deadline); finish(); });
