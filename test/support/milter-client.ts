// Tests drive relayguard with the MTA-side milter client that `relayguard milter-check` uses.
export { MilterClient as TestMilterClient, type ReplyFrame } from '../../src/audit/milter-client.js';
