// Reading the collector's Prometheus text in tests.

/** Prometheus text → value of one series (name and labels as printed), or undefined. */
export function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
