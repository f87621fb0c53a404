// Receipts (`ackMessages` / `readMessages`) of one room: ids coalesced into frames of at most 500,
// re-sent after a reconnect (once the room is joined again) until acknowledged.

import { ClientErrorCodes, DISCONNECTED, LabchatError, shouldRetry } from './errors.js';
import type { AckData, ClientEvents } from './protocol.js';

export type MarkKind = 'ackMessages' | 'readMessages';
const MAX_IDS = 500;

type Request = <K extends MarkKind>(event: K, data: ClientEvents[K]) => Promise<AckData[K]>;

export class Marks {
  private waiting: Record<MarkKind, Map<string, Array<() => void>>> = { ackMessages: new Map(), readMessages: new Map() };
  private marking: Record<MarkKind, Set<string>> = { ackMessages: new Set(), readMessages: new Set() };
  private markRejects = new Set<(e: LabchatError) => void>();
  private markTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    private readonly requestId: string,
    private readonly host: { request: Request },
    /** Whether frames may go now (connected, and the room joined). */
    private readonly ready: () => boolean,
    private readonly retryDelay: (e: unknown) => number,
  ) {}

  /** Rejects every waiting mark with `e`; later marks are refused. */
  finish(e: LabchatError): void {
    this.closed = true;
    for (const r of this.markRejects) r(e);
    this.markRejects.clear();
    this.waiting.ackMessages.clear();
    this.waiting.readMessages.clear();
    clearTimeout(this.markTimer);
  }

  mark(kind: MarkKind, ids: string[]): Promise<void> {
    if (this.closed) return Promise.reject(new LabchatError(ClientErrorCodes.LEFT, 'the room is no longer open'));
    const unique = [...new Set(ids.map((id) => id.toLowerCase()))];
    if (unique.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let left = unique.length;
      const done = () => {
        left -= 1;
        if (left === 0) {
          this.markRejects.delete(reject);
          resolve();
        }
      };
      this.markRejects.add(reject);
      for (const id of unique) {
        const waiters = this.waiting[kind].get(id) ?? [];
        waiters.push(done);
        this.waiting[kind].set(id, waiters);
      }
      if (this.markTimer === undefined) this.markTimer = setTimeout(() => this.flush(), 0);
    });
  }

  flush(): void {
    clearTimeout(this.markTimer);
    this.markTimer = undefined;
    if (!this.ready()) return;
    for (const kind of ['ackMessages', 'readMessages'] as const) {
      const ids = [...this.waiting[kind].keys()].filter((id) => !this.marking[kind].has(id));
      for (let i = 0; i < ids.length; i += MAX_IDS) this.send(kind, ids.slice(i, i + MAX_IDS));
    }
  }

  private send(kind: MarkKind, ids: string[]): void {
    for (const id of ids) this.marking[kind].add(id);
    const release = () => ids.forEach((id) => this.marking[kind].delete(id));
    this.host.request(kind, { requestId: this.requestId, messages: ids }).then(
      () => {
        release();
        for (const id of ids) {
          const waiters = this.waiting[kind].get(id);
          this.waiting[kind].delete(id);
          waiters?.forEach((w) => w());
        }
      },
      (e: unknown) => {
        release();
        if (e instanceof LabchatError && e.code === DISCONNECTED) return; // re-sent after the rejoin
        if (shouldRetry(e)) {
          setTimeout(() => this.flush(), this.retryDelay(e));
          return;
        }
        const err = e instanceof LabchatError ? e : new LabchatError('INTERNAL', String(e));
        for (const id of ids) this.waiting[kind].delete(id);
        for (const r of this.markRejects) r(err);
        this.markRejects.clear();
      },
    );
  }
}
