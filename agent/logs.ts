import type { Logger } from "pino";
import { type AgentApi, AuthRejectedError, type LogRequest } from "./api.ts";
import { type LogFollower, MAX_LOG_BYTES, type Runtime } from "./runtime.ts";

/**
 * Answers the API's requests for container logs: the tail at once, then, for a follow request, new
 * lines in batches until the request's lease lapses (the API repeats a follow request to renew it).
 * Logs are best effort: an upload that fails is dropped, and a follow whose request the API no longer
 * knows ends.
 */

/** Lines per upload; the API takes at most this many. */
const MAX_UPLOAD_LINES = 5000;
/** New lines are sent at most this often per follow. */
const FLUSH_MS = 250;

interface Follow {
  request: LogRequest;
  expires: number;
  follower: LogFollower | null;
  buffer: string[];
  flushing: Promise<void> | null;
}

export interface LogServiceOptions {
  runtime: Runtime;
  api: AgentApi;
  logger: Logger;
  onFatal(error: Error): void;
}

export class LogService {
  private readonly follows = new Map<string, Follow>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: LogServiceOptions) {
    this.timer = setInterval(() => this.tick(), FLUSH_MS);
  }

  handle(request: LogRequest): void {
    this.serve(request).catch((error: unknown) => {
      if (error instanceof AuthRejectedError) return this.options.onFatal(error);
      this.options.logger.warn({ label: request.containerLabel, err: (error as Error).message }, "log request failed");
    });
  }

  private async serve(request: LogRequest): Promise<void> {
    const { runtime } = this.options;
    const expires = Date.now() + request.leaseSeconds * 1000;
    const known = this.follows.get(request.requestId);
    if (known) {
      known.expires = expires;
      if (known.follower === null) await this.follow(known, request.containerLabel, (await runtime.logs(request.containerLabel, 0)).cursor);
      return;
    }
    const follow: Follow | null = request.follow
      ? { request, expires, follower: null, buffer: [], flushing: null }
      : null;
    if (follow) this.follows.set(request.requestId, follow);
    const { lines, cursor } = await runtime.logs(request.containerLabel, request.tail);
    // A one-off request is answered even when there is nothing; a follow sends its tail first.
    if (!follow || lines.length > 0) await this.upload(request, lines);
    if (follow) await this.follow(follow, request.containerLabel, cursor);
  }

  private async follow(follow: Follow, label: string, cursor: string): Promise<void> {
    if (!this.follows.has(follow.request.requestId)) return;
    const follower = this.options.runtime.followLogs(label, cursor, (lines) => follow.buffer.push(...lines));
    follow.follower = follower;
    // A container that went away (recycled, removed) is followed again on the next renewal.
    void follower.ended.then(() => {
      if (follow.follower === follower) follow.follower = null;
    });
  }

  /** Flushes what followers gathered and ends follows whose lease lapsed. */
  private tick(): void {
    const now = Date.now();
    for (const [requestId, follow] of this.follows) {
      if (follow.expires < now) {
        follow.follower?.stop();
        this.follows.delete(requestId);
        continue;
      }
      if (follow.buffer.length === 0 || follow.flushing) continue;
      const lines = follow.buffer.splice(0);
      follow.flushing = this.upload(follow.request, lines)
        .then((accepted) => {
          // The API no longer knows the request: its subscriber left.
          if (!accepted) follow.expires = 0;
        })
        .catch((error: unknown) => {
          if (error instanceof AuthRejectedError) return this.options.onFatal(error);
          this.options.logger.warn({ label: follow.request.containerLabel, err: (error as Error).message }, "log upload failed");
        })
        .finally(() => (follow.flushing = null));
    }
  }

  /** Uploads in pieces the API takes; false when it refused them. */
  private async upload(request: LogRequest, lines: string[]): Promise<boolean> {
    let start = 0;
    do {
      let end = start;
      let bytes = 0;
      while (end < lines.length && end - start < MAX_UPLOAD_LINES && bytes + Buffer.byteLength(lines[end]!) + 1 <= MAX_LOG_BYTES) {
        bytes += Buffer.byteLength(lines[end]!) + 1;
        end++;
      }
      const refused = await this.options.api.uploadInstanceLogs(request.instanceId, request.requestId, lines.slice(start, end));
      if (refused) {
        this.options.logger.info({ label: request.containerLabel, refused }, "log upload refused");
        return false;
      }
      start = end;
    } while (start < lines.length);
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
    for (const follow of this.follows.values()) follow.follower?.stop();
    this.follows.clear();
  }
}
