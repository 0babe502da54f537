// Each concern of the daemon starts and stops on its own; the controller starts them in order,
// stops them in reverse, and keeps one concern's failure to stop from stopping the rest (the
// shape of zigbee2mqtt's controller). The order is the data's: what feeds a concern starts after
// it and stops before it, so the pipeline flushes into the store before the store closes.
import type { Logger } from '../core/log/index.js';

export interface Lifecycle {
  readonly name: string;
  start(): void;
  stop(): void | Promise<void>;
}

export class Controller {
  private started: Lifecycle[] = [];

  constructor(private readonly concerns: readonly Lifecycle[], private readonly log: Logger) {}

  /** Starts every concern in order; if one fails, those already started are stopped, then it throws. */
  start(): void {
    for (const concern of this.concerns) {
      try {
        concern.start();
      } catch (err) {
        this.log.error({ concern: concern.name, err: (err as Error).message }, 'start failed; stopping what had started');
        void this.stop();
        throw err;
      }
      this.started.push(concern);
    }
  }

  /** Stops the started concerns in reverse order; a failure is logged and the rest still stop. */
  async stop(): Promise<void> {
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
