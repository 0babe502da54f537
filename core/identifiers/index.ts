// The identifiers and key texts of the project, validated in one place: the config, the secrets
// and registration records, the wire format and the CLI all accept exactly the same forms.
import { z } from 'zod';

/** Batch ids and gateway lives: 26 characters of Crockford base32. */
export const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** Gateway and venue ids: they become MQTT topic levels, so no '/', '+' or '#'. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit (it becomes part of MQTT topics)";

/** Whether `text` is exactly `bytes` bytes of hex (either case). */
export function isHex(text: string, bytes: number): boolean {
  return text.length === bytes * 2 && /^[0-9a-fA-F]*$/.test(text);
}

/** A zod string of `bytes` bytes in hex; the error names what the key is. */
export function hexKey(bytes: number, what: string): z.ZodString {
  return z
    .string({ error: `expected ${bytes * 2} hex digits (${what})` })
    .regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `must be ${bytes * 2} hex digits (${what})`);
}
