/** Random in [a, b) from a seeded xorshift generator, so a failing run can be replayed. */
export function seeded(seed: number): (a: number, b: number) => number {
  let x = seed >>> 0 || 1;
  return (a, b) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return a + ((x >>> 0) / 4294967296) * (b - a);
  };
}
