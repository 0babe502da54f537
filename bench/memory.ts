// Memory figures of the benchmarks: RSS and heap after a collection (run with --expose-gc), and growth
// as the least-squares slope of samples, which one noisy sample cannot skew.
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

/** RSS and JS heap in use, MB, read together after one collection. */
export function memoryMb(): { rss: number; heap: number } {
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss / 1048576, heap: m.heapUsed / 1048576 };
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
