/**
 * bench/scenarios/paced_tls.ts: paced-1000-tls and paced-100-tls, the load of
 * paced-1000 and paced-100 with chat_server speaking TLS (--tls-cert,
 * --tls-key; a fresh certificate from tools/cert.ts each run) and every
 * client connecting over TLS: what encryption adds to a delivery's latency
 * (p99) and CPU, beside the plain-TCP tables. chat_server only: ncat --chat
 * is the plain-TCP reference.
 */

import { ROOT } from "../common/paths.ts";
import { fmt } from "../report/format.ts";
import { type Context, type Scenario } from "../scenario.ts";
import { PACED_LOAD } from "./paced.ts";
import { pacedTraffic, trafficRows } from "./traffic.ts";
import { type TlsSetup, trafficRun } from "./traffic_run.ts";

export function paced1000Tls(ctx: Context): Scenario {
  return pacedTlsScenario(ctx, "paced-1000");
}

export function paced100Tls(ctx: Context): Scenario {
  return pacedTlsScenario(ctx, "paced-100");
}

function pacedTlsScenario(ctx: Context, plain: keyof typeof PACED_LOAD): Scenario {
  const { clients, senders, rate } = PACED_LOAD[plain];
  const seconds = ctx.options.quick ? 3 : 5;
  const spec = pacedTraffic(senders, rate, seconds);
  const offered = senders * rate * (clients - 1);
  const name = `${plain}-tls`;
  return {
    name,
    title: `${name}: ${plain} over TLS: ${fmt.count(clients)} clients, ${senders} senders x ` +
      `${rate} lines/s x ${seconds} s, 64-byte lines ` +
      `(${fmt.rate(offered).replace("/s", "")} deliveries/s offered), then at most 3 s to drain`,
    servers: ctx.options.servers.filter((server) => server === "chat"),
    runs: ctx.options.runs,
    rows: trafficRows(),
    run: async (server, index) => {
      const cert = await makeCertificate();
      try {
        return await trafficRun(ctx, server, index, {
          clients,
          workers: clients <= 100 ? 1 : 2,
          spec,
          readBuffer: 16 * 1024,
          connectTimeoutMs: 120_000,
          tls: cert.setup,
        });
      } finally {
        await Deno.remove(cert.dir, { recursive: true });
      }
    },
  };
}

/** A certificate and key from tools/cert.ts (openssl) in a temporary directory. */
async function makeCertificate(): Promise<{ dir: string; setup: TlsSetup }> {
  const dir = await Deno.makeTempDir({ prefix: "bench_tls_" });
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tools/cert.ts`, "--cert", cert, "--key", key],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!output.success) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(`tools/cert.ts: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
  return {
    dir,
    setup: {
      serverArgs: ["--tls-cert", cert, "--tls-key", key],
      caCert: await Deno.readTextFile(cert),
    },
  };
}
