// Questions for a technician at a terminal, or answers piped in by a script: each one shows its
// default, checks the answer, and asks again with the reason when it is not valid.
import { createInterface, Interface } from 'node:readline';
import { UsageError } from './errors.js';

/** Returns null when the answer is fine, or what is wrong with it and how to fix it. */
export type Check = (answer: string) => string | null;

export class Prompter {
  private readonly rl: Interface;
  private readonly lines: AsyncIterableIterator<string>;

  constructor(input: NodeJS.ReadableStream = process.stdin, private readonly output: NodeJS.WritableStream = process.stderr) {
    this.rl = createInterface({ input, terminal: false });
    this.lines = this.rl[Symbol.asyncIterator]();
  }

  async ask(question: string, options: { default?: string; check?: Check; secret?: boolean } = {}): Promise<string> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const shown = options.default !== undefined && options.default !== '' ? ` [${options.secret ? '****' : options.default}]` : '';
      this.output.write(`${question}${shown}: `);
      const next = await this.lines.next();
      if (next.done) {
        this.output.write('\n');
        throw new UsageError(`input ended before "${question}" was answered: answer every question, or use --non-interactive with flags`);
      }
      const answer = next.value.trim() === '' ? (options.default ?? '') : next.value.trim();
      const problem = options.check?.(answer) ?? null;
      if (problem === null) return answer;
      this.output.write(`  ✗ ${problem}\n`);
    }
    throw new UsageError(`"${question}": five answers in a row were not valid`);
  }

  close(): void {
    this.rl.close();
  }
}
