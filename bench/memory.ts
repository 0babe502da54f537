// Memory figures of the benchmarks: RSS after a collection (run with --expose-gc), and growth
// as the least-squares slope of samples, which one noisy sample cannot skew.
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

export function rssMb(): number {
  gc();
  return process.memoryUsage().rss / 1048576;
}

export function heapMb(): number {
  gc();
  return process.memoryUsage().heapUsed / 1048576;
}

/** Least-squares slope of y over x. */
export function slope(points: Array<[number, number]>): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const num = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return num / den;
}
