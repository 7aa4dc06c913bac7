/**
 * bench/common/json.ts: narrowing JSON that comes from another process (a
 * load worker's reply, the coordinator's request) from `unknown` to the
 * types the bench uses; a wrong shape throws, naming the field.
 */

export type JsonObject = { [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function asObject(value: unknown, what: string): JsonObject {
  if (!isObject(value)) throw new Error(`${what}: expected an object`);
  return value;
}

/** A number; `null` reads as NaN (JSON.stringify writes NaN and Infinity as null). */
export function numberField(o: JsonObject, key: string): number {
  const value = o[key];
  if (value === null) return NaN;
  if (typeof value !== "number") throw new Error(`${key}: expected a number`);
  return value;
}

export function optionalNumberField(o: JsonObject, key: string): number | undefined {
  return o[key] === undefined ? undefined : numberField(o, key);
}

export function stringField(o: JsonObject, key: string): string {
  const value = o[key];
  if (typeof value !== "string") throw new Error(`${key}: expected a string`);
  return value;
}

export function booleanField(o: JsonObject, key: string): boolean {
  const value = o[key];
  if (typeof value !== "boolean") throw new Error(`${key}: expected true or false`);
  return value;
}

export function arrayField(o: JsonObject, key: string): unknown[] {
  const value = o[key];
  if (!Array.isArray(value)) throw new Error(`${key}: expected an array`);
  return value;
}

export function numberArrayField(o: JsonObject, key: string): number[] {
  return arrayField(o, key).map((v) => {
    if (typeof v !== "number") throw new Error(`${key}: expected numbers`);
    return v;
  });
}

export function optionalNumberArrayField(o: JsonObject, key: string): number[] | undefined {
  return o[key] === undefined || o[key] === null ? undefined : numberArrayField(o, key);
}

/** An array of [number, number] pairs (histogram buckets, [id, index]). */
export function numberPairsField(o: JsonObject, key: string): [number, number][] {
  return arrayField(o, key).map((pair: unknown) => {
    const items: unknown[] = Array.isArray(pair) ? pair : [];
    const [a, b] = items;
    if (items.length !== 2 || typeof a !== "number" || typeof b !== "number") {
      throw new Error(`${key}: expected [number, number] pairs`);
    }
    return [a, b];
  });
}

/** The number fields `keys` of `o`, as one record. */
export function numberFields<K extends string>(
  o: JsonObject,
  keys: readonly K[],
): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of keys) out[key] = numberField(o, key);
  return out;
}
