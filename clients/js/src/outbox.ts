// The sends of one room: each with its clientMessageId (a UUID), queued while disconnected
// (bounded), re-sent with the same id after a reconnect until acknowledged, so stored exactly once.

import { ClientErrorCodes, DISCONNECTED, LabchatError, shouldRetry } from './errors.js';
import type { AckData, ChatMessage, ClientEvents } from './protocol.js';

interface Outgoing {
  clientMessageId: string;
  text: string;
  inFlight: boolean;
  resolve: (m: ChatMessage) => void;
  reject: (e: LabchatError) => void;
}

type Request = (event: 'message', data: ClientEvents['message']) => Promise<AckData['message']>;

export class Outbox {
  private queue: Outgoing[] = [];

  constructor(
    private readonly requestId: string,
    private readonly host: { request: Request; isOpen(): boolean },
    private readonly max: number,
    private readonly retryDelay: (e: unknown) => number,
  ) {}

  /** Queues a send and sends it when connected; resolves with the stored message. */
  push(text: string): Promise<ChatMessage> {
    return new Promise((resolve, reject) => {
      if (this.queue.length >= this.max) {
        reject(new LabchatError(ClientErrorCodes.QUEUE_FULL, `${this.max} messages are already waiting to be sent`));
        return;
      }
      this.queue.push({ clientMessageId: globalThis.crypto.randomUUID(), text, inFlight: false, resolve, reject });
      this.flush();
    });
  }

  /** Rejects every queued send with `e`. */
  finish(e: LabchatError): void {
    for (const o of this.queue.splice(0)) o.reject(e);
  }

  flush(): void {
    if (!this.host.isOpen()) return;
    for (const o of this.queue) {
      if (!o.inFlight) this.sendOne(o);
    }
  }

  private sendOne(o: Outgoing): void {
    o.inFlight = true;
    this.host
      .request('message', { requestId: this.requestId, message: o.text, clientMessageId: o.clientMessageId })
      .then(
        (stored) => {
          const i = this.queue.indexOf(o);
          if (i >= 0) this.queue.splice(i, 1);
          o.resolve(stored);
        },
        (e: unknown) => {
          o.inFlight = false;
          if (!this.queue.includes(o)) return;
          if (e instanceof LabchatError && e.code === DISCONNECTED) return; // re-sent on the next open
          if (shouldRetry(e)) {
            setTimeout(() => this.queue.includes(o) && !o.inFlight && this.host.isOpen() && this.sendOne(o), this.retryDelay(e));
            return;
          }
          this.queue.splice(this.queue.indexOf(o), 1);
          o.reject(e instanceof LabchatError ? e : new LabchatError('INTERNAL', String(e)));
        },
      );
  }
}
