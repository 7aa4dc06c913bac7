/**
 * The socket calls of the notes' Python, made with Linux's libc itself
 * through Deno's FFI: socket(), setsockopt(), bind(), listen(), connect(),
 * getsockname() and close() on a raw file descriptor, each failure thrown
 * as a LibcError carrying errno. Deno.listen cannot show what these show: it
 * always sets SO_REUSEADDR, it has no TCP_DEFER_ACCEPT or SO_LINGER, its
 * close() always sends a FIN first, and it hides the calls it makes.
 *
 * Needs Linux with glibc and --allow-ffi (included in -A).
 *
 * @module
 */

// Linux's values (x86_64 and aarch64, the Linux targets Deno ships for); the
// note's Python gets them from its socket module.
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOL_SOCKET = 1;
const IPPROTO_TCP = 6;

/** The name of a socket option setsockopt() can set here. */
export type SocketOption = "SO_REUSEADDR" | "SO_LINGER" | "TCP_DEFER_ACCEPT";

/** Each option's [level, option number]. */
const SOCKET_OPTIONS: Record<SocketOption, [level: number, option: number]> = {
  // The note's fix for the 2MSL problem: bind() even while a TIME_WAIT holds the address.
  SO_REUSEADDR: [SOL_SOCKET, 2],
  // struct linger {on, seconds}: {1, 0} makes close() abort the connection with a RST.
  SO_LINGER: [SOL_SOCKET, 13],
  // Seconds a listener holds a finished handshake in SYN_RCVD until the client sends data.
  TCP_DEFER_ACCEPT: [IPPROTO_TCP, 9],
};

const ERRNO_NAMES: Record<number, string> = {
  13: "EACCES",
  22: "EINVAL",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  104: "ECONNRESET",
  111: "ECONNREFUSED",
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
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

/** libc's socket calls on file descriptors; each throws LibcError when the call fails. */
export interface Libc {
  /** socket(AF_INET or AF_INET6, SOCK_STREAM, 0): a new TCP socket's file descriptor. */
  socket(family?: 4 | 6): number;
  /**
   * setsockopt(fd, level, option, &value, size): an integer option (1 = on),
   * or a struct of integers such as SO_LINGER's [on, seconds].
   */
  setsockopt(fd: number, option: SocketOption, value: number | readonly number[]): void;
  /** bind(fd, sockaddr_in or sockaddr_in6 {ip, port}): 127.0.0.1, ::1... */
  bind(fd: number, ip: string, port: number): void;
  /** listen(fd, backlog). */
  listen(fd: number, backlog: number): void;
  /** connect(fd, {ip, port}), blocking: on loopback it returns at once. */
  connect(fd: number, ip: string, port: number): void;
  /** getsockname(fd): the port the socket is bound to (the kernel's pick after port 0). */
  localPort(fd: number): number;
  /** close(fd); never throws (a close that fails has nothing left to undo). */
  close(fd: number): void;
  /** Releases libc.so.6 (the Libc must not be used after). */
  unload(): void;
}

/**
 * glibc's libc.so.6, or a sentence saying why it cannot be used: not Linux
 * (`os`, default this system's), FFI not allowed, or another libc. Never
 * prompts for the permission: a demo step does without it instead.
 */
export function openLibc(os: string = Deno.build.os): Libc | string {
  if (os !== "linux") {
    return `Linux's libc is called through FFI, and on ${os} the socket constants and errno ` +
      "differ";
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "libc is called through FFI, which needs --allow-ffi (included in -A)";
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
    socket: (family = 4) =>
      check("socket", c.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0)),
    setsockopt: (fd, option, value) => {
      const [level, number] = SOCKET_OPTIONS[option];
      const ints = new Int32Array(typeof value === "number" ? [value] : value);
      check("setsockopt", c.setsockopt(fd, level, number, ints, ints.byteLength));
    },
    bind: (fd, ip, port) => {
      const address = sockaddr(ip, port);
      check("bind", c.bind(fd, address, address.length));
    },
    listen: (fd, backlog) => {
      check("listen", c.listen(fd, backlog));
    },
    connect: (fd, ip, port) => {
      const address = sockaddr(ip, port);
      check("connect", c.connect(fd, address, address.length));
    },
    localPort: (fd) => {
      const address = new Uint8Array(28); // room for a sockaddr_in6
      check("getsockname", c.getsockname(fd, address, new Uint32Array([address.length])));
      return new DataView(address.buffer).getUint16(2, false); // ntohs: the same offset in both
    },
    close: (fd) => {
      c.close(fd);
    },
    unload: () => library.close(),
  };
}

/**
 * struct sockaddr_in (16 bytes) for an IPv4 address, sockaddr_in6 (28) for
 * IPv6: family (host byte order), port and address (network byte order).
 */
function sockaddr(ip: string, port: number): Uint8Array {
  const v6 = ip.includes(":");
  const bytes = new Uint8Array(v6 ? 28 : 16); // sin_zero, flow info and scope id stay 0
  const view = new DataView(bytes.buffer);
  view.setUint16(0, v6 ? AF_INET6 : AF_INET, true); // little-endian hosts: x86_64, aarch64
  view.setUint16(2, port, false); // htons(port)
  if (v6) bytes.set(ipv6Bytes(ip), 8);
  else bytes.set(ip.split(".").map(Number), 4);
  return bytes;
}

/** The 16 bytes of an IPv6 address in text form (`::1`, `fd00::2`; no embedded IPv4). */
export function ipv6Bytes(ip: string): Uint8Array {
  const halves = ip.replace(/^\[|\]$/g, "").split("::");
  const [head, tail] = halves;
  const groups = (part?: string) => part ? part.split(":").map((g) => parseInt(g, 16)) : [];
  const [front, back] = [groups(head), groups(tail)];
  const zeros = tail === undefined ? [] : Array(8 - front.length - back.length).fill(0);
  const all = [...front, ...zeros, ...back];
  if (halves.length > 2 || all.length !== 8 || all.some((g) => !(g >= 0 && g <= 0xffff))) {
    throw new Error(`not an IPv6 address: '${ip}'`);
  }
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => new DataView(bytes.buffer).setUint16(i * 2, group, false));
  return bytes;
}
