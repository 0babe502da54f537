// The status document promises camelCase keys throughout (docs/protocol.md, "Status").

/** Every key path in `doc` whose last key is not camelCase. */
export function nonCamelKeys(doc: unknown, path = ''): string[] {
  if (Array.isArray(doc)) return doc.flatMap((v, i) => nonCamelKeys(v, `${path}[${i}]`));
  if (doc === null || typeof doc !== 'object') return [];
  return Object.entries(doc).flatMap(([k, v]) => [
    ...(/^[a-z][a-zA-Z0-9]*$/.test(k) ? [] : [`${path}.${k}`]),
    ...nonCamelKeys(v, `${path}.${k}`),
  ]);
}
