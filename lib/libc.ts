/**
 * The socket calls of the notes' Python, made with Linux's libc itself
 * through Deno's FFI: socket(), setsockopt(), bind(), listen() and close()
 * on a raw file descriptor, each failure thrown as a LibcError carrying
 * errno. Deno.listen cannot show what these show: it always sets
 * SO_REUSEADDR, and it hides the calls it makes.
 *
 * Needs Linux with glibc and --allow-ffi (included in -A).
 *
 * @module
 */

// Linux's values (x86_64 and aarch64, the Linux targets Deno ships for); the
// note's Python gets them from its socket module.
const AF_INET = 2;
const SOCK_STREAM = 1;
const SOL_SOCKET = 1;

/** The name of a socket option setsockopt() can set here. */
export type SocketOption = "SO_REUSEADDR";

/** Each option's [level, option number]. */
const SOCKET_OPTIONS: Record<SocketOption, [level: number, option: number]> = {
  // The note's fix for the 2MSL problem: bind() even while a TIME_WAIT holds the address.
  SO_REUSEADDR: [SOL_SOCKET, 2],
};

const ERRNO_NAMES: Record<number, string> = {
  13: "EACCES",
  22: "EINVAL",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
};

/** A libc call that returned -1: which call, errno, its name and strerror's text. */
export class LibcError extends Error {
  /** `EADDRINUSE`, or `errno N` for a number this module has no name for. */
  readonly errnoName: string;

  /** `call` failed with `errno`, which strerror() explains as `text`. */
  constructor(readonly call: string, readonly errno: number, readonly text: string) {
    const name = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super(`${call}() failed: ${name} (errno ${errno}) "${text}"`);
    this.errnoName = name;
  }
}

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

/** libc's socket calls on file descriptors; each throws LibcError when the call fails. */
export interface Libc {
  /** socket(AF_INET, SOCK_STREAM, 0): a new IPv4 TCP socket's file descriptor. */
  socket(): number;
  /** setsockopt(fd, level, option, &value, sizeof(int)): an integer option (1 = on). */
  setsockopt(fd: number, option: SocketOption, value: number): void;
  /** bind(fd, sockaddr_in{ipv4, port}): an IPv4 address such as 127.0.0.1. */
  bind(fd: number, ipv4: string, port: number): void;
  /** listen(fd, backlog). */
  listen(fd: number, backlog: number): void;
  /** close(fd); never throws (a close that fails has nothing left to undo). */
  close(fd: number): void;
  /** Releases libc.so.6 (the Libc must not be used after). */
  unload(): void;
}

/** glibc's libc.so.6, or a sentence saying why it cannot be used (not Linux, another libc). */
export function openLibc(): Libc | string {
  if (Deno.build.os !== "linux") {
    return `they call Linux's libc through FFI; on ${Deno.build.os} the socket constants and ` +
      "errno differ";
  }
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (err) {
    return `cannot load libc.so.6 through FFI (${(err as Error).message})`;
  }
  const c = library.symbols;
  // errno is read right after the failing call, before anything else can touch it.
  const check = (call: string, result: number): number => {
    if (result >= 0) return result;
    const errno = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
    throw new LibcError(call, errno, Deno.UnsafePointerView.getCString(c.strerror(errno)!));
  };
  return {
    socket: () => check("socket", c.socket(AF_INET, SOCK_STREAM, 0)),
    setsockopt: (fd, option, value) => {
      const [level, number] = SOCKET_OPTIONS[option];
      check("setsockopt", c.setsockopt(fd, level, number, new Int32Array([value]), 4));
    },
    bind: (fd, ipv4, port) => {
      check("bind", c.bind(fd, sockaddrIn(ipv4, port), 16));
    },
    listen: (fd, backlog) => {
      check("listen", c.listen(fd, backlog));
    },
    close: (fd) => {
      c.close(fd);
    },
    unload: () => library.close(),
  };
}

/** struct sockaddr_in: family (host byte order), port and address (network byte order). */
function sockaddrIn(ipv4: string, port: number): Uint8Array {
  const bytes = new Uint8Array(16); // the last 8 bytes (sin_zero) stay 0
  const view = new DataView(bytes.buffer);
  view.setUint16(0, AF_INET, true); // little-endian hosts: x86_64, aarch64
  view.setUint16(2, port, false); // htons(port)
  bytes.set(ipv4.split(".").map(Number), 4);
  return bytes;
}
