// Each concern of the daemon starts and stops on its own; the controller starts them in order,
// stops them in reverse, and keeps one concern's failure to stop from stopping the rest (the
// shape of zigbee2mqtt's controller). The order is the data's: what feeds a concern starts after
// it and stops before it, so the pipeline flushes into the store before the store closes.
import type { Logger } from '../core/log/index.js';

export interface Lifecycle {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

export class Controller {
  private started: Lifecycle[] = [];
  private stopping: Promise<void> | null = null;

  constructor(private readonly concerns: readonly Lifecycle[], private readonly log: Logger) {}

  /**
   * Starts every concern in order. If one fails, those already started are stopped (awaited, so
   * the store's final commit is made) before the failure is thrown.
   */
  async start(): Promise<void> {
    for (const concern of this.concerns) {
      try {
        await concern.start();
      } catch (err) {
        this.log.error({ concern: concern.name, err: (err as Error).message }, 'start failed; stopping what had started');
        await this.stop();
        throw err;
      }
      if (this.stopping !== null) {
        // stopped (a fatal error, a signal) while this one was starting: it stops too
        await concern.stop();
        throw new Error(`stopped while ${concern.name} was starting`);
      }
      this.started.push(concern);
    }
  }

  /**
   * Stops the started concerns in reverse order; a failure is logged and the rest still stop. A
   * second call (a signal during a fatal error's stop) waits for the first instead of racing it.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopStarted();
    return this.stopping;
  }

  private async stopStarted(): Promise<void> {
    const started = this.started.reverse();
    this.started = [];
    for (const concern of started) {
      try {
        await concern.stop();
      } catch (err) {
        this.log.error({ concern: concern.name, err: (err as Error).message }, 'stop failed; stopping the rest');
      }
    }
  }
}
