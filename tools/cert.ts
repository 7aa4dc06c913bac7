// tools/cert.ts: a certificate and key for trying chat_server.ts over TLS.
//
//   deno task cert                                 # certs/cert.pem and certs/key.pem
//   deno run -A tools/cert.ts [--cert FILE] [--key FILE] [--days N] [--force]
//   deno run -N --allow-read=certs chat_server.ts --tls-cert certs/cert.pem --tls-key certs/key.pem
//
// It runs Debian's `openssl req -x509` (no hand-written ASN.1): a
// self-signed P-256 certificate for localhost, 127.0.0.1 and this machine's
// name, that clients trust by being given the certificate itself
// (chat_client.ts --tls --ca, ncat --ssl-trustfile, openssl s_client -CAfile).
// It is a leaf, basicConstraints CA:FALSE: Deno (rustls) rejects a
// certificate that is a CA used as an end entity, which a plain
// `openssl req -x509` makes. Existing files are kept unless --force.

import { parseArgs } from "node:util";
import { dirname } from "node:path";
import { Failure, runMain, UsageError } from "../utils.ts";

const USAGE = `usage: deno run -A tools/cert.ts [--cert FILE] [--key FILE] [--days N] [--force]

Writes a self-signed TLS certificate (a leaf, not a CA) and its private key, PEM,
for localhost, 127.0.0.1 and this machine's name, with Debian's openssl.

options:
  --cert FILE   where the certificate goes (default certs/cert.pem)
  --key FILE    where the private key goes, readable by you only (default certs/key.pem)
  --days N      how long it is valid (default 365)
  --force       replace files that exist
  -h, --help    show this help

Then: deno run -N --allow-read=certs chat_server.ts --tls-cert certs/cert.pem --tls-key certs/key.pem
Exit status: 0 written, 1 openssl missing or failed, 2 bad usage.`;

/** A DNS name openssl's subjectAltName syntax takes as it is. */
const DNS_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

async function main(args: string[]): Promise<number> {
  const { values } = parse(args);
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const days = Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 36_500) {
    throw new UsageError(`--days ${values.days}: expected a whole number of days, 1 to 36500`);
  }
  const names = certificateNames();
  for (const file of [values.cert, values.key]) {
    if (!values.force && await exists(file)) {
      throw new Failure(`${file} exists; pass --force to replace it`);
    }
    await Deno.mkdir(dirname(file), { recursive: true });
  }
  await runOpenssl(values.cert, values.key, days, names);
  await Deno.chmod(values.key, 0o600); // a private key is nobody else's business
  console.log(`wrote ${values.cert} and ${values.key} (${names.join(", ")}; ${days} days)`);
  // chat_server reads the files only with read access to them (lib/flag_files.ts).
  const readable = [...new Set([dirname(values.cert), dirname(values.key)])].join(",");
  console.log(
    `serve: deno run -N --allow-read=${readable} chat_server.ts ` +
      `--tls-cert ${values.cert} --tls-key ${values.key}`,
  );
  return 0;
}

function parse(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        cert: { type: "string", default: "certs/cert.pem" },
        key: { type: "string", default: "certs/key.pem" },
        days: { type: "string", default: "365" },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** localhost, 127.0.0.1, and the machine's name when it is another usable DNS name. */
function certificateNames(): string[] {
  const names = ["localhost", "127.0.0.1"];
  const host = Deno.hostname();
  if (DNS_NAME.test(host) && host !== "localhost") names.push(host);
  return names;
}

async function runOpenssl(cert: string, key: string, days: number, names: string[]) {
  const altNames = names.map((name) => /^[\d.]+$/.test(name) ? `IP:${name}` : `DNS:${name}`);
  const command = new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      String(days),
      "-subj",
      "/CN=localhost",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      `subjectAltName=${altNames.join(",")}`,
      "-addext",
      "keyUsage=critical,digitalSignature",
      "-addext",
      "extendedKeyUsage=serverAuth",
    ],
    stdout: "null",
    stderr: "piped",
  });
  let result: Deno.CommandOutput;
  try {
    result = await command.output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Failure("openssl not found; install it: sudo apt-get install openssl");
    }
    throw err;
  }
  if (!result.success) {
    const why = new TextDecoder().decode(result.stderr).trim().split("\n")[0];
    throw new Failure(`openssl failed: ${why || `exit status ${result.code}`}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

if (import.meta.main) runMain(() => main(Deno.args), USAGE);
