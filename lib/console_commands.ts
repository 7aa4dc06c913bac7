/**
 * The chat server's operator console commands, the lines typed where the
 * note's server called input(): /who, /kick, the moderation commands (/ban,
 * /unban, /bans, /mute, /unmute), /quit; any other line goes to everyone
 * as `<server>`. Answers go to the console log, never to the room.
 *
 * @module
 */

import { splitWord } from "./chat_text.ts";
import type { Room } from "./room.ts";

/** One line typed at the console; `stop` shuts the server down (/quit). */
export function operatorCommand(room: Room, raw: string, stop: () => void): void {
  const line = raw.trim();
  if (!line) return;
  const [command, rest] = splitWord(line);
  switch (command) {
    case "/who":
      return room.log(room.whoLine(rest === "-v"));
    case "/quit":
      return stop();
    case "/kick":
      if (!room.kickAnywhere(rest)) room.log(`! no one called '${rest}' is online`);
      return;
    case "/ban":
    case "/unban":
    case "/bans":
    case "/mute":
    case "/unmute":
      return room.log(moderate(room, command, rest));
    case "/help":
      return room.log(
        "* console: /who [-v], /kick NAME, /ban NAME, /unban ADDRESS, /bans, /mute NAME, " +
          "/unmute NAME, /quit; any other line goes to everyone",
      );
    default:
      if (line.startsWith("/")) return room.log(`! unknown console command ${command}; try /help`);
      room.sayAsOperator(line);
  }
}

/**
 * The operator's moderation commands; the answer for the console. Bans are
 * by address (on loopback or behind one NAT that is everyone there), and
 * bans and mutes hold on this server only.
 */
function moderate(room: Room, command: string, name: string): string {
  if (command === "/bans") {
    const bans = room.bans();
    return bans.length ? `* banned (${bans.length}): ${bans.join(", ")}` : "* no one is banned";
  }
  if (!name) return `! usage: ${command} ${command === "/unban" ? "ADDRESS" : "NAME"}`;
  if (command === "/unban") {
    return room.unban(name) ? `* unbanned ${name}` : `! ${name} is not banned; /bans lists them`;
  }
  const nowhere = `! no one called '${name}' is on this server`;
  if (command === "/ban") {
    const address = room.ban(name);
    return address
      ? `* banned ${address} (${name} was there); /unban ${address} undoes it`
      : nowhere;
  }
  const on = command === "/mute";
  return room.mute(name, on) ? `* ${name} is ${on ? "muted" : "unmuted"}` : nowhere;
}
