// The size rule's defaults, shared by its handlers and its MTA and audit parts.

/** Postfix's default message_size_limit (10,240,000 bytes). */
export const DEFAULT_MAX_BYTES = 10_240_000;
