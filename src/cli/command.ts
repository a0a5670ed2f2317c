export interface Command {
  name: string;
  /** Synopsis after "relayguard ". */
  usage: string;
  summary: string;
  /** Exit code; -1 means "keep running" (serve). */
  run(argv: string[]): Promise<number>;
}
